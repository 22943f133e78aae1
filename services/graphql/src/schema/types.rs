//! The object types `User`, `Post` and `Product`, and the fields that resolve through a loader
//! or a prefetched page: `User.posts` through [`PostsByAuthorLoader`] (one SQL statement per
//! query, per 250 authors), `Post.author` through [`UserLoader`] (one users-service batch call
//! per query), `User.email` behind its rule of [`crate::access`] (the empty string for anyone
//! else).

use async_graphql::{
    ComplexObject, Context, ErrorExtensions, ID, Result, SimpleObject, dataloader::DataLoader,
};
use server::Page;

use super::{
    arguments::page,
    errors::{coded_error, codes},
    loaders::{AuthorPage, PostsByAuthorLoader, UserLoader},
    state::loader_database_error,
};
use crate::{
    access,
    cost::list_cost,
    model::PostRow,
    upstream::{ProductRecord, UserRecord},
};

/// `User.posts`'s page size when `limit` is absent: a user's posts are nested under a list of
/// users, so a page of them is kept small.
pub const USER_POSTS_DEFAULT_LIMIT: u32 = 20;

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
    /// Its email address, for the user themself and for admins; the empty string for anyone
    /// else, as GitHub's `User.email` (`String!`, "the user's publicly visible profile
    /// email"). Never an error: the seed types it `String!`, and a non-null field error would
    /// null the user and, through `[User!]!` or `Post.author: User!`, the whole answer.
    async fn email(&self, context: &Context<'_>) -> String {
        // The rule is decided here, from the caller, whatever users-service sent.
        if !access::is_self_or_admin(context, self.key) {
            return String::new();
        }
        self.email.clone().unwrap_or_default()
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
#[derive(SimpleObject, Clone)]
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
