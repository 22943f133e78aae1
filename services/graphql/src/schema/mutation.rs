//! The type `Mutation`, each field behind its rule of [`crate::access`]: `createUser` for admins,
//! `createPost` as the caller (an admin as anyone), `updatePost` and `deletePost` by the
//! post's author or an admin.

use async_graphql::{Context, ErrorExtensions, ID, Object, Result, dataloader::DataLoader};

use super::{
    arguments::parse_id,
    errors::{coded_error, codes},
    loaders::UserLoader,
    state::{database_error, relay, state},
    types::{Post, User},
};
use crate::{access, model::ValidPost};

/// The mutations: the type `Mutation`.
pub struct MutationRoot;

/// Succeeds when post `id` exists and the caller is its author or an admin.
async fn owned_post(context: &Context<'_>, id: i64) -> Result<()> {
    access::require_user(context)?;
    let post = state(context)
        .posts
        .find(id)
        .await
        .map_err(|error| database_error(context, error))?
        .ok_or_else(|| coded_error(codes::NOT_FOUND, format!("post {id} not found")))?;
    // A post's author never changes, so the check holds for the write that follows.
    access::require_self_or_admin(context, post.author_id)?;
    Ok(())
}

#[Object(name = "Mutation")]
impl MutationRoot {
    /// Creates a user in users-service (admins only; its validation and unique emails apply).
    async fn create_user(
        &self,
        context: &Context<'_>,
        name: String,
        email: String,
    ) -> Result<User> {
        access::require_admin(context)?;
        let user = state(context)
            .users
            .create(&name, &email, relay(context))
            .await
            .map_err(|error| error.extend())?;
        Ok(user.into())
    }

    /// Creates a post by the caller (`authorId` defaults to them; only an admin may name
    /// someone else); subscribers of `postCreated` receive it.
    async fn create_post(
        &self,
        context: &Context<'_>,
        title: String,
        content: Option<String>,
        author_id: Option<ID>,
    ) -> Result<Post> {
        let caller = access::require_user(context)?;
        let author_id = match author_id {
            Some(author_id) => parse_id(&author_id, "authorId")?,
            None => caller.user_id,
        };
        if !caller.may_act_for(author_id) {
            return Err(access::forbidden(
                "authorId must be your own user id (only an admin may post for another user)",
            ));
        }
        let valid = ValidPost::parse(&title, content).map_err(|error| error.extend())?;
        let state = state(context);
        let loader = context.data_unchecked::<DataLoader<UserLoader>>();
        let author = loader
            .load_one(author_id)
            .await
            .map_err(|error| error.extend())?;
        if author.is_none() {
            return Err(coded_error(
                codes::NOT_FOUND,
                format!("user {author_id} not found"),
            ));
        }
        let row = state
            .posts
            .insert(author_id, &valid)
            .await
            .map_err(|error| database_error(context, error))?;
        state.events.publish(&row).await;
        let post = Post::from(row);
        Ok(post)
    }

    /// Changes a post's title and content (its author or an admin).
    async fn update_post(
        &self,
        context: &Context<'_>,
        id: ID,
        title: String,
        content: Option<String>,
    ) -> Result<Post> {
        access::require_user(context)?;
        let id = parse_id(&id, "id")?;
        let valid = ValidPost::parse(&title, content).map_err(|error| error.extend())?;
        owned_post(context, id).await?;
        state(context)
            .posts
            .update(id, &valid)
            .await
            .map_err(|error| database_error(context, error))?
            .map(Post::from)
            .ok_or_else(|| coded_error(codes::NOT_FOUND, format!("post {id} not found")))
    }

    /// Deletes a post (its author or an admin); true when it existed.
    async fn delete_post(&self, context: &Context<'_>, id: ID) -> Result<bool> {
        access::require_user(context)?;
        let id = parse_id(&id, "id")?;
        owned_post(context, id).await?;
        let deleted = state(context)
            .posts
            .delete(id)
            .await
            .map_err(|error| database_error(context, error))?;
        if deleted {
            Ok(true)
        } else {
            Err(coded_error(
                codes::NOT_FOUND,
                format!("post {id} not found"),
            ))
        }
    }
}
