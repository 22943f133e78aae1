//! The GraphQL schema: the seed's `User`, `Post`, `Query`, `Mutation` (names kept), plus
//! products, pagination, `updatePost`/`deletePost` and `Subscription.postCreated`.
//!
//! Resolvers never call another service or the database once per parent: `Post.author` goes
//! through [`UserLoader`] (one users-service batch call per query) and `User.posts` through
//! [`PostsByAuthorLoader`] (one SQL statement per query, per 250 authors), the loaders of
//! [`crate::loaders`]. Every list takes `limit` (and `offset`, at most 10000) and costs, in the
//! complexity limit, its page size times its items ([`crate::cost::list_cost`]);
//! `postsConnection` pages posts by cursor ([`crate::connection`]) and costs the same way. The mutations are in [`crate::mutations`], the rules of who
//! may do what in [`crate::access`].

use std::sync::Arc;

use async_graphql::{
    ComplexObject, Context, Error, ErrorExtensions, ID, Object, Result, SimpleObject, Subscription,
    dataloader::DataLoader,
};
use futures_util::{Stream, StreamExt};
use shared::pagination::{DEFAULT_LIMIT, MAX_LIMIT, Page};

pub use crate::errors::{coded_error, codes};
pub use crate::loaders::{
    AuthorPage, CallerRequestId, PostsByAuthorLoader, RequestData, UserLoader, request_data,
};
use crate::{
    access::{self, UpstreamAuth},
    budget::OperationBudget,
    connection::{self, PostConnection},
    cost::list_cost,
    events::PostEvents,
    model::PostRow,
    posts::PostRepository,
    upstream::{ProductRecord, ProductsClient, Relay, UserRecord, UsersClient},
};

/// `User.posts`'s page size when `limit` is absent: a user's posts are nested under a list of
/// users, so a page of them is kept small.
pub const USER_POSTS_DEFAULT_LIMIT: u32 = 20;

/// A database failure of a loader, logged; opaque to the client.
fn loader_database_error(context: &Context<'_>, error: &sqlx::Error) -> Error {
    slog::error!(state(context).logger, "database error"; "error" => format!("{error:#}"));
    coded_error(codes::INTERNAL, "internal error")
}

/// A database failure: logged with its cause by the caller's context, opaque to the client.
pub(crate) fn database_error(context: &Context<'_>, error: sqlx::Error) -> Error {
    if let Ok(state) = context.data::<AppState>() {
        slog::error!(state.logger, "database error"; "error" => format!("{error:#}"));
    }
    coded_error(codes::INTERNAL, "internal error")
}

/// What every resolver reaches through the context.
#[derive(Clone)]
pub struct AppState {
    /// Posts, in this service's database.
    pub posts: PostRepository,
    /// users-service.
    pub users: UsersClient,
    /// products-service.
    pub products: ProductsClient,
    /// `postCreated` across instances.
    pub events: PostEvents,
    /// For causes that clients must not see.
    pub logger: slog::Logger,
}

pub(crate) fn state<'a>(context: &Context<'a>) -> &'a AppState {
    context.data_unchecked::<AppState>()
}

/// What an upstream call of this operation passes on: its request id and caller's token.
pub(crate) fn relay<'a>(context: &Context<'a>) -> Relay<'a> {
    Relay {
        request_id: context
            .data_opt::<CallerRequestId>()
            .map_or("", |id| id.0.as_str()),
        authorization: context
            .data_opt::<UpstreamAuth>()
            .and_then(|upstream| upstream.0.as_deref()),
        budget: context.data_opt::<Arc<OperationBudget>>().map(Arc::as_ref),
    }
}

pub(crate) fn parse_id(id: &ID, argument: &str) -> Result<i64> {
    id.parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(|| {
        coded_error(
            codes::BAD_USER_INPUT,
            format!("{argument}: '{}' is not a valid id", id.as_str()),
        )
    })
}

/// The page `limit` and `offset` name (`limit` defaults to `default`), or `BAD_USER_INPUT`.
fn page(limit: Option<i32>, offset: Option<i32>, default: u32) -> Result<Page> {
    let bad_input = |message: String| coded_error(codes::BAD_USER_INPUT, message);
    let limit = limit
        .map(u32::try_from)
        .transpose()
        .map_err(|_| bad_input(format!("limit must be between 0 and {MAX_LIMIT}")))?
        .unwrap_or(default);
    let offset = offset
        .map(u32::try_from)
        .transpose()
        .map_err(|_| bad_input("offset must not be negative".to_owned()))?;
    Page::new(Some(limit), offset).map_err(bad_input)
}

/// A user of users-service.
#[derive(SimpleObject, Clone)]
#[graphql(complex)]
pub struct User {
    /// Its id.
    pub id: ID,
    /// Its name.
    pub name: String,
    #[graphql(skip)]
    /// Its email address, when users-service showed it to this caller (see `User.email`).
    pub email: Option<String>,
    /// When it was created (RFC 3339).
    pub created_at: String,
    #[graphql(skip)]
    /// The numeric id, for loaders.
    pub key: i64,
    #[graphql(skip)]
    /// A page of the user's posts, when the list resolver loaded that page for every user of
    /// its own page at once.
    pub prefetched_posts: Option<(Page, Vec<PostRow>)>,
}

impl From<UserRecord> for User {
    fn from(user: UserRecord) -> Self {
        Self {
            id: ID(user.id.to_string()),
            name: user.name,
            email: user.email,
            created_at: user.created_at,
            key: user.id,
            prefetched_posts: None,
        }
    }
}

#[ComplexObject]
impl User {
    /// Its email address: only for the user themself and for admins (anyone else gets a
    /// `FORBIDDEN` error on this field, and the rest of the query still answers).
    async fn email(&self, context: &Context<'_>) -> Result<Option<String>> {
        // The rule is decided here, from the caller, whatever users-service sent.
        if !access::is_self_or_admin(context, self.key) {
            return Err(access::forbidden(
                "only the user themself or an admin may see this email address",
            ));
        }
        Ok(self.email.clone())
    }

    /// The user's posts, oldest first (default 20, at most 1000 per page).
    #[graphql(complexity = "list_cost(limit, USER_POSTS_DEFAULT_LIMIT, child_complexity)")]
    async fn posts(
        &self,
        context: &Context<'_>,
        limit: Option<i32>,
        offset: Option<i32>,
    ) -> Result<Vec<Post>> {
        let page = page(limit, offset, USER_POSTS_DEFAULT_LIMIT)?;
        if let Some((prefetched, posts)) = &self.prefetched_posts
            && *prefetched == page
        {
            return Ok(posts.iter().cloned().map(|row| self.own(row)).collect());
        }
        let loader = context.data_unchecked::<DataLoader<PostsByAuthorLoader>>();
        let key = AuthorPage {
            author: self.key,
            limit: page.limit,
            offset: page.offset,
        };
        let posts = loader
            .load_one(key)
            .await
            .map_err(|error| loader_database_error(context, &error))?;
        Ok(posts
            .unwrap_or_default()
            .into_iter()
            .map(|row| self.own(row))
            .collect())
    }
}

impl User {
    /// One of this user's posts, its author already known: `users { posts { author } }` asks
    /// users-service nothing more (and one operation's calls stay few whatever its pages).
    fn own(&self, row: PostRow) -> Post {
        let mut post = Post::from(row);
        post.prefetched_author = Some(Some(UserRecord {
            id: self.key,
            name: self.name.clone(),
            email: self.email.clone(),
            created_at: self.created_at.clone(),
        }));
        post
    }
}

/// A post, stored by this service.
#[derive(SimpleObject, Clone, serde::Serialize, serde::Deserialize)]
#[graphql(complex)]
pub struct Post {
    /// Its id.
    pub id: ID,
    /// Its title.
    pub title: String,
    /// Its text.
    pub content: Option<String>,
    /// Its author's id.
    pub author_id: ID,
    /// When it was created (RFC 3339).
    pub created_at: String,
    #[graphql(skip)]
    /// The author's numeric id, for the loader.
    pub author_key: i64,
    #[graphql(skip)]
    #[serde(skip)]
    /// The author, when the list resolver loaded every author of the page at once
    /// (`Some(None)`: looked up, not found).
    pub prefetched_author: Option<Option<UserRecord>>,
}

impl From<PostRow> for Post {
    fn from(post: PostRow) -> Self {
        Self {
            id: ID(post.id.to_string()),
            title: post.title,
            content: post.content,
            author_id: ID(post.author_id.to_string()),
            created_at: post.created_at,
            author_key: post.author_id,
            prefetched_author: None,
        }
    }
}

#[ComplexObject]
impl Post {
    /// The author, from users-service.
    async fn author(&self, context: &Context<'_>) -> Result<User> {
        let found = match &self.prefetched_author {
            Some(prefetched) => Ok(prefetched.clone()),
            None => {
                let loader = context.data_unchecked::<DataLoader<UserLoader>>();
                loader.load_one(self.author_key).await
            }
        };
        match found {
            Ok(Some(user)) => Ok(user.into()),
            Ok(None) => Err(coded_error(
                codes::NOT_FOUND,
                format!("user {} not found", self.author_key),
            )),
            Err(error) => Err(error.extend()),
        }
    }
}

/// A product of products-service.
#[derive(SimpleObject, Clone)]
pub struct Product {
    /// Its id.
    pub id: ID,
    /// Its name.
    pub name: String,
    /// Its price.
    pub price: f64,
    /// When it was created (RFC 3339).
    pub created_at: String,
}

impl From<ProductRecord> for Product {
    fn from(product: ProductRecord) -> Self {
        Self {
            id: ID(product.id.to_string()),
            name: product.name,
            price: product.price,
            created_at: product.created_at,
        }
    }
}

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

/// The queries: the type `Query`, the seed's name (fragments `on Query` keep working).
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
    /// [`crate::connection`]).
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

/// The subscriptions: the type `Subscription`.
pub struct SubscriptionRoot;

#[Subscription(name = "Subscription")]
impl SubscriptionRoot {
    /// Every post created from now on, by any instance of this service.
    async fn post_created(&self, context: &Context<'_>) -> Result<impl Stream<Item = Post>> {
        let stream = state(context).events.subscribe().await.map_err(|error| {
            slog::error!(state(context).logger, "cannot subscribe to new posts";
                "error" => format!("{error:#}"));
            coded_error(codes::UPSTREAM_UNAVAILABLE, "cannot subscribe to new posts")
        })?;
        Ok(stream
            .filter_map(|event| async move { event.map(|event| Post::from(PostRow::from(event))) }))
    }
}
