//! The GraphQL schema: `User`, `Post`, `Product`, the roots `Query`, `Mutation` and
//! `Subscription`, pagination by `limit`/`offset` and by cursor (`postsConnection`).
//!
//! Resolvers never call another service or the database once per parent: nested fields go
//! through the loaders of their operation or a page fetched by their list at once. Every list
//! takes `limit` (and `offset`, at most 10000) and costs, in the complexity limit, its page size
//! times its items ([`crate::cost::list_cost`]). Who may do what is [`crate::access`]'s.
//!
//! | module | what it holds |
//! |---|---|
//! | `types` | the object types and their nested fields |
//! | `query` | the type `Query` |
//! | `mutation` | the type `Mutation`, each field behind its rule |
//! | `subscription` | the type `Subscription` |
//! | `connection` | `postsConnection`: its arguments and its connection type |
//! | `arguments` | ids and `limit`/`offset` pages, checked |
//! | `state` | what every resolver reaches through the context |
//! | `caller` | a request's (a connection's) caller data |
//! | `loaders` | an operation's loaders |
//! | `errors` | the `extensions.code` values and how failures become them |

pub(crate) mod arguments;
pub(crate) mod caller;
pub(crate) mod connection;
pub(crate) mod errors;
pub(crate) mod loaders;
pub(crate) mod mutation;
pub(crate) mod query;
pub(crate) mod state;
pub(crate) mod subscription;
pub(crate) mod types;

pub use caller::{CallerRequestId, CallerTrace, RequestData, request_data};
pub use connection::{CURSOR_SCOPE, DEFAULT_FIRST, PostConnection};
pub use errors::{coded_error, codes};
pub use loaders::{AuthorPage, OperationLoaders, PostsByAuthorLoader, UserLoader};
pub use mutation::MutationRoot;
pub use query::QueryRoot;
pub use state::AppState;
pub use subscription::SubscriptionRoot;
pub use types::{Post, Product, USER_POSTS_DEFAULT_LIMIT, User};
