//! Posts: this service's own data, through the shared database adapter. Every statement runs
//! unchanged on SQLite and PostgreSQL, and each one counts in `graphql_sql_queries_total`, so the
//! tests can prove that a nested query costs one statement, not one per parent.

use std::collections::HashMap;

use db::{Database, placeholders, timestamp_now};
use prometheus::IntCounterVec;
use server::pagination::Page;
use sqlx::AssertSqlSafe;

use crate::pages::PageCache;
pub use crate::row::PostRow;

/// The longest title, in characters.
pub const MAX_TITLE_CHARS: usize = 300;
/// The longest content, in characters.
pub const MAX_CONTENT_CHARS: usize = 100_000;

/// A post's fields as a client sent them, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidPost {
    /// The title, trimmed.
    pub title: String,
    /// The content, as sent.
    pub content: Option<String>,
}

/// What is wrong with a post a client sent.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PostInputError {
    /// Blank or over the limit.
    #[error("title must be 1 to {MAX_TITLE_CHARS} characters (got {0})")]
    Title(usize),
    /// Over the limit.
    #[error("content must be at most {MAX_CONTENT_CHARS} characters (got {0})")]
    Content(usize),
}

impl ValidPost {
    /// Checks a title and content.
    pub fn parse(title: &str, content: Option<String>) -> Result<Self, PostInputError> {
        let title = title.trim();
        let title_chars = title.chars().count();
        if title_chars == 0 || title_chars > MAX_TITLE_CHARS {
            return Err(PostInputError::Title(title_chars));
        }
        if let Some(content) = &content {
            let content_chars = content.chars().count();
            if content_chars > MAX_CONTENT_CHARS {
                return Err(PostInputError::Content(content_chars));
            }
        }
        Ok(Self {
            title: title.to_owned(),
            content,
        })
    }
}

const COLUMNS: &str = "id, title, content, author_id, created_at";

/// Reads and writes posts.
#[derive(Clone)]
pub struct PostRepository {
    /// The pool (migrated).
    database: Database,
    /// `graphql_sql_queries_total{query}`.
    queries: IntCounterVec,
    /// Pages of the list, between writes.
    pages: PageCache,
}

impl PostRepository {
    /// A repository over `database`, counting its statements in `queries`, keeping list pages
    /// in `pages`.
    pub fn new(database: Database, queries: IntCounterVec, pages: PageCache) -> Self {
        Self {
            database,
            queries,
            pages,
        }
    }

    fn count(&self, query: &str) {
        self.queries.with_label_values(&[query]).inc();
    }

    /// One page of posts by id, optionally only those of one author (from the page cache when
    /// no write came since it was read).
    pub async fn list(&self, page: Page, author_id: Option<i64>) -> sqlx::Result<Vec<PostRow>> {
        self.pages
            .get_or_load(page, author_id, || self.select_page(page, author_id))
            .await
    }

    async fn select_page(&self, page: Page, author_id: Option<i64>) -> sqlx::Result<Vec<PostRow>> {
        self.count("list");
        let query = match author_id {
            Some(author_id) => sqlx::query_as::<_, PostRow>(
                "SELECT id, title, content, author_id, created_at FROM posts \
                 WHERE author_id = $1 ORDER BY id LIMIT $2 OFFSET $3",
            )
            .bind(author_id),
            None => sqlx::query_as::<_, PostRow>(
                "SELECT id, title, content, author_id, created_at FROM posts \
                 ORDER BY id LIMIT $1 OFFSET $2",
            ),
        };
        query
            .bind(page.limit)
            .bind(page.offset)
            .fetch_all(self.database.pool())
            .await
    }

    /// The post with this id, if any.
    pub async fn find(&self, id: i64) -> sqlx::Result<Option<PostRow>> {
        self.count("find");
        sqlx::query_as::<_, PostRow>(
            "SELECT id, title, content, author_id, created_at FROM posts WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.database.pool())
        .await
    }

    /// One page of the posts of each of these authors (oldest first), in one statement (the
    /// DataLoader's batch): an author with many posts costs a page, not all of them.
    pub async fn by_authors(
        &self,
        author_ids: &[i64],
        page: Page,
    ) -> sqlx::Result<HashMap<i64, Vec<PostRow>>> {
        let mut by_author: HashMap<i64, Vec<PostRow>> =
            author_ids.iter().map(|id| (*id, Vec::new())).collect();
        if author_ids.is_empty() || page.limit == 0 {
            return Ok(by_author);
        }
        self.count("by_authors");
        let authors = author_ids.len();
        let sql = format!(
            "SELECT {COLUMNS} FROM (SELECT {COLUMNS}, \
               ROW_NUMBER() OVER (PARTITION BY author_id ORDER BY id) AS position \
               FROM posts WHERE author_id IN ({})) AS ranked \
             WHERE position > ${} AND position <= ${} ORDER BY id",
            placeholders(authors),
            authors + 1,
            authors + 2
        );
        let mut query = sqlx::query_as::<_, PostRow>(AssertSqlSafe(sql));
        for id in author_ids {
            query = query.bind(*id);
        }
        let query = query
            .bind(page.offset)
            .bind(page.offset.saturating_add(page.limit));
        for post in query.fetch_all(self.database.pool()).await? {
            by_author.entry(post.author_id).or_default().push(post);
        }
        Ok(by_author)
    }

    /// Stores a new post.
    pub async fn insert(&self, author_id: i64, post: &ValidPost) -> sqlx::Result<PostRow> {
        self.count("insert");
        let row = sqlx::query_as::<_, PostRow>(
            "INSERT INTO posts (title, content, author_id, created_at) VALUES ($1, $2, $3, $4) \
             RETURNING id, title, content, author_id, created_at",
        )
        .bind(&post.title)
        .bind(&post.content)
        .bind(author_id)
        .bind(timestamp_now())
        .fetch_one(self.database.pool())
        .await?;
        self.pages.written().await;
        Ok(row)
    }

    /// Changes a post's title and content; `None` when there is no such post.
    pub async fn update(&self, id: i64, post: &ValidPost) -> sqlx::Result<Option<PostRow>> {
        self.count("update");
        let row = sqlx::query_as::<_, PostRow>(
            "UPDATE posts SET title = $1, content = $2 WHERE id = $3 \
             RETURNING id, title, content, author_id, created_at",
        )
        .bind(&post.title)
        .bind(&post.content)
        .bind(id)
        .fetch_optional(self.database.pool())
        .await?;
        if row.is_some() {
            self.pages.written().await;
        }
        Ok(row)
    }

    /// Deletes a post; `false` when there was none.
    pub async fn delete(&self, id: i64) -> sqlx::Result<bool> {
        self.count("delete");
        let result = sqlx::query("DELETE FROM posts WHERE id = $1")
            .bind(id)
            .execute(self.database.pool())
            .await?;
        let deleted = result.rows_affected() > 0;
        if deleted {
            self.pages.written().await;
        }
        Ok(deleted)
    }

    /// Inserts the seed's three demo posts when there are none; `true` when it did.
    pub async fn seed_if_empty(&self, author_ids: [i64; 2]) -> anyhow::Result<bool> {
        let mut transaction = self.database.pool().begin().await?;
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM posts")
            .fetch_one(&mut *transaction)
            .await?;
        if count > 0 {
            return Ok(false);
        }
        let [first, second] = author_ids;
        for (title, author_id) in [
            ("GraphQL Intro", first),
            ("Apollo Server", first),
            ("REST vs GraphQL", second),
        ] {
            sqlx::query(
                "INSERT INTO posts (title, content, author_id, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(title)
            .bind("Content...")
            .bind(author_id)
            .bind(timestamp_now())
            .execute(&mut *transaction)
            .await?;
        }
        transaction.commit().await?;
        self.pages.written().await;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_are_trimmed_and_bounded_in_characters() {
        assert_eq!(
            ValidPost::parse("  Hi  ", None).map(|post| post.title),
            Ok("Hi".to_owned())
        );
        assert_eq!(ValidPost::parse("   ", None), Err(PostInputError::Title(0)));
        let longest = "é".repeat(MAX_TITLE_CHARS);
        assert!(ValidPost::parse(&longest, None).is_ok());
        assert_eq!(
            ValidPost::parse(&format!("{longest}e"), None),
            Err(PostInputError::Title(301))
        );
    }

    #[test]
    fn content_is_bounded_in_characters() {
        let longest = "ü".repeat(MAX_CONTENT_CHARS);
        assert!(ValidPost::parse("t", Some(longest.clone())).is_ok());
        assert_eq!(
            ValidPost::parse("t", Some(format!("{longest}!"))),
            Err(PostInputError::Content(100_001))
        );
    }
}
