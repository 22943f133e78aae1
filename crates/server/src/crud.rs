//! The REST shape the table-backed services share: list (a page, or the rows named by `?ids=`),
//! read by id through the cache (`X-Cache`), create (201 + `Location`), replace, delete (204),
//! with the cache entry of an id invalidated after every write to it.
//!
//! A service implements [`Table`] over its SQL and keeps thin handlers (they carry its OpenAPI
//! annotations) that call a [`Resource`].

use std::collections::HashMap;

use actix_web::{HttpResponse, http::header};
use auth::Principal;
use bytes::Bytes;
use serde::{Serialize, de::DeserializeOwned};

use cache::{Cache, CacheStatus, Entry};
use db::Database;

use crate::{
    ApiError,
    pagination::{
        ListPage, ListQuery, ListRequest, PageSql, TOTAL_COUNT_HEADER, Total, links, list_response,
    },
};

/// The rows of one resource, by integer id.
// Handlers run on actix's single-threaded workers, so these futures need not be `Send`.
#[allow(async_fn_in_trait)]
pub trait Table {
    /// A row as the API returns it (and as its cache entry holds it).
    type Item: Serialize + DeserializeOwned;
    /// What a create or replace writes, validated.
    type Valid;
    /// What the table fails with.
    type Error: Into<ApiError>;

    /// A row's id.
    fn id(item: &Self::Item) -> i64;
    /// One page by id: the rows [`ListPage::sql`] on the `id` column selects (at most
    /// `limit + 1`, in its order).
    async fn page(&self, page: &ListPage) -> Result<Vec<Self::Item>, Self::Error>;
    /// The exact number of rows (it reads them all: only on request).
    async fn count(&self) -> Result<i64, Self::Error>;
    /// The database's estimate of the number of rows, where it keeps one cheaply.
    async fn estimate(&self) -> Result<Option<i64>, Self::Error> {
        Ok(None)
    }
    /// The rows with these ids that exist, by id.
    async fn by_ids(&self, ids: &[i64]) -> Result<Vec<Self::Item>, Self::Error>;
    /// The row with this id.
    async fn find(&self, id: i64) -> Result<Option<Self::Item>, Self::Error>;
    /// Inserts a row.
    async fn insert(&self, valid: &Self::Valid) -> Result<Self::Item, Self::Error>;
    /// Replaces a row; `None` when there is none.
    async fn update(&self, id: i64, valid: &Self::Valid)
    -> Result<Option<Self::Item>, Self::Error>;
    /// Deletes a row; `false` when there was none.
    async fn delete(&self, id: i64) -> Result<bool, Self::Error>;

    /// Whether `viewer` (`None`: anonymous) may see less of row `id` than the whole of it, so
    /// that reads pass it through [`Table::redact`]. Nothing is hidden by default.
    fn hides_from(_id: i64, _viewer: Option<&Principal>) -> bool {
        false
    }

    /// Takes out of `item` what a viewer that [`Table::hides_from`] names may not see.
    fn redact(_item: &mut Self::Item) {}
}

/// A [`Table`] served over HTTP with cache-aside reads.
pub struct Resource<T> {
    /// The rows.
    pub table: T,
    /// Cache-aside for reads by id.
    pub cache: Cache,
    /// The singular name, for cache keys and messages (`user`).
    pub name: &'static str,
    /// The collection's path, for `Location` (`/api/users`).
    pub path: &'static str,
}

impl<T: Table> Resource<T> {
    fn cache_key(&self, id: i64) -> String {
        format!("{}:{id}", self.name)
    }

    /// The cache key of a row as [`Table::redact`] leaves it, for the viewers it hides from:
    /// reads by id serve them cached bytes too.
    fn redacted_key(&self, id: i64) -> String {
        format!("{}:{id}:redacted", self.name)
    }

    /// The scope of the list's cursors: the collection's last path segment (`users`).
    fn scope(&self) -> &'static str {
        self.path.rsplit('/').next().unwrap_or(self.path)
    }

    /// Drops the cached entries of row `id` (after a write to it).
    pub async fn invalidate(&self, id: i64) {
        self.cache.invalidate(&self.cache_key(id)).await;
        self.cache.invalidate(&self.redacted_key(id)).await;
    }

    fn not_found(&self, id: i64) -> ApiError {
        ApiError::NotFound(format!("{} {id} not found", self.name))
    }

    /// `GET {path}`: a page (with `Link` to the pages beside it, and the total asked for), or
    /// the rows named by `?ids=`.
    pub async fn list(&self, query: ListQuery) -> Result<HttpResponse, ApiError> {
        self.list_for(query, None).await
    }

    /// [`Self::list`] as `viewer` may see it ([`Table::hides_from`]).
    pub async fn list_for(
        &self,
        query: ListQuery,
        viewer: Option<&Principal>,
    ) -> Result<HttpResponse, ApiError> {
        match query.into_request(self.scope())? {
            ListRequest::Page { page, exact_count } => {
                let rows = self.table.page(&page).await.map_err(Into::into)?;
                let mut window = page.window(rows, T::id);
                for item in &mut window.items {
                    if T::hides_from(T::id(item), viewer) {
                        T::redact(item);
                    }
                }
                let total = if exact_count {
                    Total::Exact(self.table.count().await.map_err(Into::into)?)
                } else {
                    match self.table.estimate().await.map_err(Into::into)? {
                        Some(estimate) => Total::Estimate(estimate),
                        None => Total::Unknown,
                    }
                };
                let link = links(self.path, self.scope(), page.limit, &window);
                Ok(list_response(&window.items, Some(&link), total))
            }
            ListRequest::Ids(ids) => self.by_ids(&ids, viewer).await,
        }
    }

    /// A cached row's JSON as `viewer` may see it: as stored, or decoded, redacted and encoded
    /// again.
    fn view(&self, id: i64, json: &Bytes, viewer: Option<&Principal>) -> Result<Bytes, ApiError> {
        if !T::hides_from(id, viewer) {
            return Ok(json.clone());
        }
        let mut item: T::Item = serde_json::from_slice(json).map_err(|error| {
            ApiError::Internal(anyhow::Error::new(error).context("a cached row"))
        })?;
        T::redact(&mut item);
        serde_json::to_vec(&item)
            .map(Bytes::from)
            .map_err(|error| ApiError::Internal(error.into()))
    }

    /// `?ids=`: each row from the cache `GET {path}/{id}` fills, the others in one statement
    /// (and cached for the next look-up of either kind); the rows found, by id.
    async fn by_ids(
        &self,
        ids: &[i64],
        viewer: Option<&Principal>,
    ) -> Result<HttpResponse, ApiError> {
        let keys: Vec<String> = ids.iter().map(|id| self.cache_key(*id)).collect();
        let entries = self
            .cache
            .get_many(&keys, |missing| async move {
                let missing_ids: Vec<i64> = missing.iter().map(|&index| ids[index]).collect();
                let rows = self.table.by_ids(&missing_ids).await?;
                let mut rows: HashMap<i64, T::Item> =
                    rows.into_iter().map(|row| (T::id(&row), row)).collect();
                Ok::<_, T::Error>(
                    missing_ids
                        .iter()
                        .map(|id| Entry::json(rows.remove(id).as_ref()))
                        .collect(),
                )
            })
            .await
            .map_err(Into::into)?;
        // The cached entries are the rows' JSON already: the array is joined, not re-encoded.
        let mut body = Vec::with_capacity(2 + entries.len() * 128);
        body.push(b'[');
        let mut found = 0_i64;
        for (id, entry) in ids.iter().zip(&entries) {
            if let Entry::Found(json) = entry {
                if found > 0 {
                    body.push(b',');
                }
                body.extend_from_slice(&self.view(*id, json, viewer)?);
                found += 1;
            }
        }
        body.push(b']');
        Ok(HttpResponse::Ok()
            .insert_header((TOTAL_COUNT_HEADER, found))
            .content_type("application/json")
            .body(body))
    }

    /// `GET {path}/{id}`, from the cache when it can (`X-Cache: hit` or `miss`).
    pub async fn get(&self, id: i64) -> Result<HttpResponse, ApiError> {
        self.get_for(id, None).await
    }

    /// [`Self::get`] as `viewer` may see it ([`Table::hides_from`]).
    pub async fn get_for(
        &self,
        id: i64,
        viewer: Option<&Principal>,
    ) -> Result<HttpResponse, ApiError> {
        let redacted = T::hides_from(id, viewer);
        let key = if redacted {
            self.redacted_key(id)
        } else {
            self.cache_key(id)
        };
        let (status, entry) = self
            .cache
            .get_or_load(&key, || async {
                self.table.find(id).await.map(|mut item| {
                    if let Some(item) = item.as_mut().filter(|_| redacted) {
                        T::redact(item);
                    }
                    Entry::json(item.as_ref())
                })
            })
            .await
            .map_err(Into::into)?;
        Ok(cached_response(status, entry, || self.not_found(id)))
    }

    /// `POST {path}`: 201 with `Location`.
    pub async fn create(&self, valid: T::Valid) -> Result<HttpResponse, ApiError> {
        let item = self.table.insert(&valid).await.map_err(Into::into)?;
        let id = T::id(&item);
        // A read of this id before it existed may have cached "missing".
        self.invalidate(id).await;
        Ok(HttpResponse::Created()
            .insert_header((header::LOCATION, format!("{}/{id}", self.path)))
            .json(item))
    }

    /// `PUT {path}/{id}`: 200 with the new row, or 404.
    pub async fn update(&self, id: i64, valid: T::Valid) -> Result<HttpResponse, ApiError> {
        let updated = self.table.update(id, &valid).await;
        self.invalidate(id).await;
        match updated.map_err(Into::into)? {
            Some(item) => Ok(HttpResponse::Ok().json(item)),
            None => Err(self.not_found(id)),
        }
    }

    /// `DELETE {path}/{id}`: 204, or 404.
    pub async fn delete(&self, id: i64) -> Result<HttpResponse, ApiError> {
        let deleted = self.table.delete(id).await;
        self.invalidate(id).await;
        if deleted.map_err(Into::into)? {
            Ok(HttpResponse::NoContent().finish())
        } else {
            Err(self.not_found(id))
        }
    }
}

/// One keyset page of the rows of `table` by their `id` column ([`ListPage::sql`]), each read
/// as an `R`: what a [`Table::page`] over a whole table runs. `columns` and `table` are the
/// caller's constants, never input.
pub async fn select_page<R>(
    database: &Database,
    columns: &'static str,
    table: &'static str,
    page: &ListPage,
) -> Result<Vec<R>, sqlx::Error>
where
    R: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> + Send + Unpin,
{
    let PageSql {
        condition,
        tail,
        binds,
    } = page.sql("id", 1);
    let filter = condition.map(|condition| format!("WHERE {condition}"));
    let sql = format!(
        "SELECT {columns} FROM {table} {} {tail}",
        filter.unwrap_or_default()
    );
    let mut query = sqlx::query_as::<_, R>(sqlx::AssertSqlSafe(sql));
    for value in binds {
        query = query.bind(value);
    }
    query.fetch_all(database.pool()).await
}

/// The header that says whether a read was a cache hit.
pub const CACHE_STATUS_HEADER: actix_web::http::header::HeaderName =
    actix_web::http::header::HeaderName::from_static("x-cache");

/// The response to a cached read: the JSON value (200) or `missing`'s error, with `X-Cache`.
pub fn cached_response(
    status: CacheStatus,
    entry: Entry,
    missing: impl FnOnce() -> ApiError,
) -> actix_web::HttpResponse {
    use actix_web::{HttpResponse, ResponseError};
    match entry {
        Entry::Found(body) => HttpResponse::Ok()
            .content_type("application/json")
            .insert_header((CACHE_STATUS_HEADER, status.as_str()))
            .body(body),
        Entry::Missing => {
            let error = missing();
            HttpResponse::build(error.status_code())
                .insert_header((CACHE_STATUS_HEADER, status.as_str()))
                .json(error.body())
        }
    }
}

/// A table-backed service, built: database migrated, listener bound, routes in place.
pub struct TableService<T> {
    /// The server.
    service: crate::service::HttpService,
    /// The rows (for seeding).
    table: T,
}

impl<T: Table + Clone + Send + Sync + 'static> TableService<T> {
    /// Opens the database and cache (running `migrations`), builds the table with `table`, and
    /// binds the server with `routes` over a [`Resource`] named `name` at `path`.
    pub async fn build(
        settings: crate::service::ServiceSettings,
        logger: slog::Logger,
        migrations: db::Migrations,
        (name, path): (&'static str, &'static str),
        table: impl FnOnce(Database) -> T,
        routes: fn(&mut actix_web::web::ServiceConfig, actix_web::web::Data<Resource<T>>),
    ) -> anyhow::Result<Self> {
        let context = crate::service::ServiceContext::open(&settings, migrations, logger).await?;
        let table = table(context.database.clone());
        let resource = actix_web::web::Data::new(Resource {
            table: table.clone(),
            cache: context.cache.clone(),
            name,
            path,
        });
        let service = crate::service::HttpService::bind(&settings, &context, move |config| {
            routes(config, resource.clone())
        })?;
        Ok(Self { service, table })
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.service.port()
    }

    /// The rows.
    pub fn table(&self) -> &T {
        &self.table
    }

    /// Serves until `shutdown` resolves, then drains and stops.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        self.service.run_until_stopped(shutdown).await
    }
}
