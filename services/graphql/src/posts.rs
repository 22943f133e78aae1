//! The posts table: this service's own data, through the shared database adapter. Every statement runs
//! unchanged on SQLite and PostgreSQL, and each one counts in `graphql_sql_queries_total`, so the
//! tests can prove that a nested query costs one statement, not one per parent.
//!
//! Every list reads a range of an index in its order (`posts_pkey` by id, `posts_author_id_id`
//! by author then id), so a page costs its own rows, never the table's.

use std::collections::HashMap;

use db::{Database, timestamp_now};
use prometheus::IntCounterVec;
use server::{ListPage, Page, Window};
use sqlx::AssertSqlSafe;

use crate::{
    model::{PostRow, ValidPost},
    pages::PageCache,
};

const COLUMNS: &str = "id, title, content, author_id, created_at";

/// An offset page of posts by id: `$1` the limit, `$2` the offset (at most
/// [`server::MAX_OFFSET`]).
pub const LIST_SQL: &str =
    "SELECT id, title, content, author_id, created_at FROM posts ORDER BY id LIMIT $1 OFFSET $2";

/// An offset page of one author's posts by id: `$1` the author, `$2` the limit, `$3` the
/// offset.
pub const LIST_BY_AUTHOR_SQL: &str = "SELECT id, title, content, author_id, created_at FROM posts \
     WHERE author_id = $1 ORDER BY id LIMIT $2 OFFSET $3";

/// The statement that reads a keyset page of posts by id, of one author when `author_id` is
/// given (`$1`, bound first), and the values of its other placeholders in order.
pub fn page_sql(page: ListPage, author_id: Option<i64>) -> (String, Vec<i64>) {
    let first_placeholder = if author_id.is_some() { 2 } else { 1 };
    let sql = page.sql("id", first_placeholder);
    let conditions: Vec<String> = author_id
        .map(|_| "author_id = $1".to_owned())
        .into_iter()
        .chain(sql.condition)
        .collect();
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {} ", conditions.join(" AND "))
    };
    (
        format!("SELECT {COLUMNS} FROM posts {filter}{}", sql.tail),
        sql.binds,
    )
}

/// The most authors whose pages one statement reads: one `UNION ALL` arm each, and SQLite
/// allows at most 500 arms in a compound statement.
pub const AUTHORS_PER_STATEMENT: usize = 250;

/// The statement that reads a page of each of `authors` authors: `$1` the limit, `$2` the
/// offset, `$3…` the authors' ids. Each arm is one author's page, a range of
/// `posts_author_id_id` read in order (an `IN` list over a window function would read every
/// post of every author, then sort them).
pub fn by_authors_sql(authors: usize) -> String {
    (0..authors)
        .map(|arm| {
            format!(
                "SELECT {COLUMNS} FROM (SELECT {COLUMNS} FROM posts WHERE author_id = ${} \
                 ORDER BY id LIMIT $1 OFFSET $2) AS author_{arm}",
                arm + 3
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ")
}

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
            Some(author_id) => sqlx::query_as::<_, PostRow>(LIST_BY_AUTHOR_SQL).bind(author_id),
            None => sqlx::query_as::<_, PostRow>(LIST_SQL),
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

    /// One keyset page of posts by id (the connection's), optionally only those of one author.
    pub async fn page(
        &self,
        page: ListPage,
        author_id: Option<i64>,
    ) -> sqlx::Result<Window<PostRow>> {
        self.count("page");
        let (statement, binds) = page_sql(page, author_id);
        let mut query = sqlx::query_as::<_, PostRow>(AssertSqlSafe(statement));
        if let Some(author_id) = author_id {
            query = query.bind(author_id);
        }
        for value in binds {
            query = query.bind(value);
        }
        let rows = query.fetch_all(self.database.pool()).await?;
        Ok(page.window(rows, |row| row.id))
    }

    /// One page of the posts of each of these authors (oldest first), one statement per
    /// [`AUTHORS_PER_STATEMENT`] authors (the DataLoader's batch): each author's page is its own
    /// range of `posts_author_id_id`, so an author with many posts costs a page, not all of
    /// them.
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
        let mut authors: Vec<i64> = by_author.keys().copied().collect();
        authors.sort_unstable();
        for authors in authors.chunks(AUTHORS_PER_STATEMENT) {
            self.count("by_authors");
            let mut query =
                sqlx::query_as::<_, PostRow>(AssertSqlSafe(by_authors_sql(authors.len())))
                    .bind(page.limit)
                    .bind(page.offset);
            for id in authors {
                query = query.bind(*id);
            }
            for post in query.fetch_all(self.database.pool()).await? {
                by_author.entry(post.author_id).or_default().push(post);
            }
        }
        // Each author's rows came from one arm, in its order; SQL promises no order across a
        // `UNION ALL`, so each page is put in order here.
        for posts in by_author.values_mut() {
            posts.sort_unstable_by_key(|post| post.id);
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

    /// Inserts three demo posts when there are none; `true` when it did.
    pub async fn seed_if_empty(&self, author_ids: [i64; 2]) -> anyhow::Result<bool> {
        let mut transaction = self.database.pool().begin().await?;
        let any: Option<i64> = sqlx::query_scalar("SELECT id FROM posts LIMIT 1")
            .fetch_optional(&mut *transaction)
            .await?;
        if any.is_some() {
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
