//! The type `Query`: users, posts (by page and as a connection) and products. A list fetches
//! what its items' nested fields select in one call started at once (every author of a page of
//! posts, a page of posts of every user of a page), rather than through the loaders, which
//! first wait out their batching delay (what the nested queries cost: docs/benchmarks.md). A
//! prefetched page is used only when every nested selection asks for that same page.

use async_graphql::{Context, ErrorExtensions, ID, Object, Result, dataloader::DataLoader};
use server::{DEFAULT_LIMIT, Page};

use super::{
    arguments::{page, parse_id},
    connection::{self, PostConnection},
    loaders::UserLoader,
    state::{database_error, relay, state},
    types::{Post, Product, USER_POSTS_DEFAULT_LIMIT, User},
};
use crate::{access, cost::list_cost};

/// The one page of posts every `posts` selection under this `users` field asks for, if they all
/// ask for the same one (else each user's resolver asks the loader for its own).
fn nested_posts_page(context: &Context<'_>) -> Option<Page> {
    let field = context.field();
    let mut pages = field
        .selection_set()
        .filter(|field| field.name() == "posts")
        .map(|field| {
            let arguments = field.arguments().ok()?;
            let number = |name: &str| -> Option<Option<i32>> {
                match arguments
                    .iter()
                    .find(|(argument, _)| argument.as_str() == name)
                {
                    None | Some((_, async_graphql::Value::Null)) => Some(None),
                    Some((_, async_graphql::Value::Number(number))) => {
                        Some(Some(i32::try_from(number.as_i64()?).ok()?))
                    }
                    Some(_) => None,
                }
            };
            page(
                number("limit")?,
                number("offset")?,
                USER_POSTS_DEFAULT_LIMIT,
            )
            .ok()
        });
    let first = pages.next()??;
    pages.all(|page| page == Some(first)).then_some(first)
}

/// Every author of a page of posts in one users-service call, started now: the loader would
/// batch the same keys but first waits out its batching delay (the loaders serve a single
/// parent: `user(id) { posts }`, `post(id) { author }`).
async fn prefetch_authors(context: &Context<'_>, posts: &mut [Post]) -> Result<()> {
    let mut keys: Vec<i64> = posts.iter().map(|post| post.author_key).collect();
    keys.sort_unstable();
    keys.dedup();
    let authors = state(context)
        .users
        .by_ids(&keys, relay(context))
        .await
        .map_err(|error| error.extend())?;
    for post in posts {
        post.prefetched_author = Some(authors.get(&post.author_key).cloned());
    }
    Ok(())
}

/// The queries: the type `Query` (fragments `on Query` rely on the name).
pub struct QueryRoot;

#[Object(name = "Query")]
impl QueryRoot {
    /// Users, by id (default 100, at most 1000 per page).
    #[graphql(complexity = "list_cost(limit, DEFAULT_LIMIT, child_complexity)")]
    async fn users(
        &self,
        context: &Context<'_>,
        limit: Option<i32>,
        offset: Option<i32>,
    ) -> Result<Vec<User>> {
        let page = page(limit, offset, DEFAULT_LIMIT)?;
        let users = state(context)
            .users
            .list(page, relay(context))
            .await
            .map_err(|error| error.extend())?;
        let mut users: Vec<User> = users.into_iter().map(User::from).collect();
        if let Some(posts_page) = nested_posts_page(context) {
            // Every user's page of posts in one statement, started now: the loader would batch
            // the same keys but first waits out its batching delay and runs a future per user.
            let keys: Vec<i64> = users.iter().map(|user| user.key).collect();
            let mut by_author = state(context)
                .posts
                .by_authors(&keys, posts_page)
                .await
                .map_err(|error| database_error(context, error))?;
            for user in &mut users {
                let posts = by_author.remove(&user.key).unwrap_or_default();
                user.prefetched_posts = Some((posts_page, posts));
            }
        }
        Ok(users)
    }

    /// The caller's own user; null when anonymous (or when users-service no longer has it).
    async fn me(&self, context: &Context<'_>) -> Result<Option<User>> {
        let Some(caller) = access::caller(context) else {
            return Ok(None);
        };
        let loader = context.data_unchecked::<DataLoader<UserLoader>>();
        let user = loader
            .load_one(caller.user_id)
            .await
            .map_err(|error| error.extend())?;
        Ok(user.map(User::from))
    }

    /// One user, or null.
    async fn user(&self, context: &Context<'_>, id: ID) -> Result<Option<User>> {
        let id = parse_id(&id, "id")?;
        let loader = context.data_unchecked::<DataLoader<UserLoader>>();
        let user = loader.load_one(id).await.map_err(|error| error.extend())?;
        Ok(user.map(User::from))
    }

    /// Posts, by id, optionally of one author (default 100, at most 1000 per page).
    #[graphql(complexity = "list_cost(limit, DEFAULT_LIMIT, child_complexity)")]
    async fn posts(
        &self,
        context: &Context<'_>,
        limit: Option<i32>,
        offset: Option<i32>,
        author_id: Option<ID>,
    ) -> Result<Vec<Post>> {
        let page = page(limit, offset, DEFAULT_LIMIT)?;
        let author_id = author_id.map(|id| parse_id(&id, "authorId")).transpose()?;
        let posts = state(context)
            .posts
            .list(page, author_id)
            .await
            .map_err(|error| database_error(context, error))?;
        let mut posts: Vec<Post> = posts.into_iter().map(Post::from).collect();
        if context.look_ahead().field("author").exists() {
            prefetch_authors(context, &mut posts).await?;
        }
        Ok(posts)
    }

    /// Posts by id as a Relay connection, optionally of one author: `first` (default 20, at
    /// most 1000) after the cursor `after`, or `last` before `before` (see
    /// [`super::connection`]).
    #[graphql(
        complexity = "list_cost(first.or(last), connection::DEFAULT_FIRST, child_complexity)"
    )]
    async fn posts_connection(
        &self,
        context: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        author_id: Option<ID>,
    ) -> Result<PostConnection> {
        let page = connection::page(first, after.as_deref(), last, before.as_deref())?;
        let author_id = author_id.map(|id| parse_id(&id, "authorId")).transpose()?;
        let window = state(context)
            .posts
            .page(page, author_id)
            .await
            .map_err(|error| database_error(context, error))?;
        let ids: Vec<i64> = window.items.iter().map(|row| row.id).collect();
        let mut posts: Vec<Post> = window.items.into_iter().map(Post::from).collect();
        let selects_authors = context
            .look_ahead()
            .field("edges")
            .field("node")
            .field("author")
            .exists();
        if selects_authors {
            prefetch_authors(context, &mut posts).await?;
        }
        Ok(connection::connection(
            window.prev.is_some(),
            window.next.is_some(),
            ids.into_iter().zip(posts),
        ))
    }

    /// One post, or null.
    async fn post(&self, context: &Context<'_>, id: ID) -> Result<Option<Post>> {
        let id = parse_id(&id, "id")?;
        let post = state(context)
            .posts
            .find(id)
            .await
            .map_err(|error| database_error(context, error))?;
        Ok(post.map(Post::from))
    }

    /// Products, by id (default 100, at most 1000 per page).
    #[graphql(complexity = "list_cost(limit, DEFAULT_LIMIT, child_complexity)")]
    async fn products(
        &self,
        context: &Context<'_>,
        limit: Option<i32>,
        offset: Option<i32>,
    ) -> Result<Vec<Product>> {
        let page = page(limit, offset, DEFAULT_LIMIT)?;
        let products = state(context)
            .products
            .list(page, relay(context))
            .await
            .map_err(|error| error.extend())?;
        Ok(products.into_iter().map(Product::from).collect())
    }

    /// One product, or null.
    async fn product(&self, context: &Context<'_>, id: ID) -> Result<Option<Product>> {
        let id = parse_id(&id, "id")?;
        let product = state(context)
            .products
            .find(id, relay(context))
            .await
            .map_err(|error| error.extend())?;
        Ok(product.map(Product::from))
    }
}
