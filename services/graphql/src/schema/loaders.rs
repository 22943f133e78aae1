//! The loaders of one operation, which batch its reads (one users-service call, one SQL
//! statement per level) and draw on its [`OperationBudget`]. Batches are per operation, so
//! nothing fetched for one caller reaches another.

use std::{collections::HashMap, sync::Arc};

use async_graphql::dataloader::{DataLoader, Loader};
use server::Page;

use crate::{
    access::UpstreamAuth,
    budget::OperationBudget,
    model::PostRow,
    posts::PostRepository,
    upstream::{Relay, UpstreamError, UserRecord, UsersClient},
};

/// Loads users by id from users-service, one batch call per query. It lives as long as one
/// operation and keeps nothing between batches: what it loads was fetched with that caller's
/// token.
pub struct UserLoader {
    /// users-service.
    pub users: UsersClient,
    /// Passed on as `X-Request-Id`.
    pub request_id: String,
    /// The operation's trace context, continued by each call.
    pub trace: Option<runtime::TraceContext>,
    /// The caller's token, passed on.
    pub authorization: UpstreamAuth,
    /// The operation's budget, which each call draws on.
    pub budget: Arc<OperationBudget>,
}

impl Loader<i64> for UserLoader {
    type Value = UserRecord;
    type Error = Arc<UpstreamError>;

    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, UserRecord>, Self::Error> {
        let relay = Relay {
            request_id: &self.request_id,
            trace: self.trace.as_ref(),
            authorization: self.authorization.0.as_deref(),
            budget: Some(&self.budget),
        };
        self.users.by_ids(keys, relay).await.map_err(Arc::new)
    }
}

/// One page of one author's posts: what [`PostsByAuthorLoader`] loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AuthorPage {
    /// The author.
    pub author: i64,
    /// Posts per page.
    pub limit: i64,
    /// Posts skipped.
    pub offset: i64,
}

/// Loads a page of posts of each author, one SQL statement per page size in a query.
pub struct PostsByAuthorLoader {
    /// Posts.
    pub posts: PostRepository,
}

impl Loader<AuthorPage> for PostsByAuthorLoader {
    type Value = Vec<PostRow>;
    type Error = Arc<sqlx::Error>;

    async fn load(
        &self,
        keys: &[AuthorPage],
    ) -> Result<HashMap<AuthorPage, Vec<PostRow>>, Self::Error> {
        // (limit, offset) → the authors asking for that page.
        let mut authors_by_page: HashMap<(i64, i64), Vec<i64>> = HashMap::new();
        for key in keys {
            authors_by_page
                .entry((key.limit, key.offset))
                .or_default()
                .push(key.author);
        }
        let mut loaded = HashMap::with_capacity(keys.len());
        for ((limit, offset), authors) in authors_by_page {
            let page = Page { limit, offset };
            let by_author = self
                .posts
                .by_authors(&authors, page)
                .await
                .map_err(Arc::new)?;
            for (author, posts) in by_author {
                loaded.insert(
                    AuthorPage {
                        author,
                        limit,
                        offset,
                    },
                    posts,
                );
            }
        }
        Ok(loaded)
    }
}

/// One operation's loaders: batches are per operation, and the calls they make draw on its
/// budget.
pub struct OperationLoaders {
    /// Users by id.
    pub users: DataLoader<UserLoader>,
    /// Posts by author.
    pub posts_by_author: DataLoader<PostsByAuthorLoader>,
}

/// The loaders of one operation run for the caller whose token is `upstream`, reading from
/// users-service and the posts table.
pub fn operation_loaders(
    users: &UsersClient,
    posts: &PostRepository,
    request_id: &str,
    trace: Option<runtime::TraceContext>,
    upstream: UpstreamAuth,
    budget: Arc<OperationBudget>,
) -> OperationLoaders {
    OperationLoaders {
        users: DataLoader::new(
            UserLoader {
                users: users.clone(),
                request_id: request_id.to_owned(),
                trace,
                authorization: upstream,
                budget,
            },
            tokio::spawn,
        ),
        posts_by_author: DataLoader::new(
            PostsByAuthorLoader {
                posts: posts.clone(),
            },
            tokio::spawn,
        ),
    }
}

impl OperationLoaders {
    /// Adds these to a GraphQL request.
    pub fn attach(self, request: async_graphql::Request) -> async_graphql::Request {
        request.data(self.users).data(self.posts_by_author)
    }
}
