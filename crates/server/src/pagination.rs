//! How lists are paged: keyset pages reached by opaque cursors (`?after=`, `?before=`), with
//! `Link` headers (RFC 8288) to the next and previous pages; `?limit=&offset=` for small
//! tables; the `?ids=1,2,3` batch; totals only when asked (`?count=exact`).
//!
//! A keyset page costs the same wherever it is in the table: the database seeks the index on
//! the page's key to the cursor and reads `limit + 1` rows (the extra row says whether another
//! page follows). An `offset` page reads and drops `offset` rows first, so offsets are capped at
//! [`MAX_OFFSET`]; an exact total counts every row, so it is computed only on request.
//!
//! A table writes its own SQL around [`ListPage::sql`], which gives the condition, order and
//! limit of a page by one integer key column, and turns the rows into a [`Window`] with
//! [`ListPage::window`]; [`list_response`] answers the JSON array with the `Link` and total
//! headers.

use actix_web::{HttpResponse, http::header::HeaderName};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use utoipa::IntoParams;

use crate::ApiError;

/// The header that carries the exact number of rows behind a list (with `?count=exact`).
pub const TOTAL_COUNT_HEADER: HeaderName = HeaderName::from_static("x-total-count");
/// The header that carries the database's estimate of the rows behind a list, when it keeps
/// one (PostgreSQL's planner statistics) and no exact count was asked for.
pub const TOTAL_ESTIMATE_HEADER: HeaderName = HeaderName::from_static("x-total-count-estimate");
/// Page size when `limit` is absent.
pub const DEFAULT_LIMIT: u32 = 100;
/// The largest page, and the most ids one batch may name.
pub const MAX_LIMIT: u32 = 1000;
/// The largest `offset`: deeper pages are reached by cursor.
pub const MAX_OFFSET: u32 = 10_000;
/// The longest cursor accepted (ours are far shorter).
const MAX_CURSOR_LEN: usize = 128;

/// The query string of a list endpoint.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Rows per page (0–1000, default 100).
    #[param(minimum = 0, maximum = 1000)]
    pub limit: Option<u32>,
    /// The page after this cursor (from a `Link: rel="next"` header).
    pub after: Option<String>,
    /// The page before this cursor (from a `Link: rel="prev"` header).
    pub before: Option<String>,
    /// Rows to skip (0–10000, default 0): for small tables; deeper pages are reached with
    /// `after`.
    #[param(minimum = 0, maximum = 10000)]
    pub offset: Option<u32>,
    /// Comma-separated ids (at most 1000): returns just those rows that exist, by id.
    #[param(example = "1,2,3")]
    pub ids: Option<String>,
    /// `exact`: count every row into `X-Total-Count` (its cost grows with the table).
    #[param(example = "exact")]
    pub count: Option<String>,
}

/// A validated offset page (for callers that page by offset only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// Rows per page.
    pub limit: i64,
    /// Rows to skip.
    pub offset: i64,
}

impl Page {
    /// A page from optional `limit` (default 100, at most 1000) and `offset` (default 0, at most
    /// 10000); the error names what is wrong.
    pub fn new(limit: Option<u32>, offset: Option<u32>) -> Result<Self, String> {
        let limit = checked_limit(limit)?;
        let offset = offset.unwrap_or(0);
        if offset > MAX_OFFSET {
            return Err(format!(
                "offset must be between 0 and {MAX_OFFSET}; deeper pages are reached by cursor \
                 (the Link header's rel=\"next\")"
            ));
        }
        Ok(Self {
            limit,
            offset: i64::from(offset),
        })
    }
}

fn checked_limit(limit: Option<u32>) -> Result<i64, String> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if limit > MAX_LIMIT {
        return Err(format!("limit must be between 0 and {MAX_LIMIT}"));
    }
    Ok(i64::from(limit))
}

/// Where a page starts, on the list's ascending key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seek {
    /// The first rows.
    Start,
    /// The rows after skipping this many.
    Offset(i64),
    /// The rows whose key is greater than this one.
    After(i64),
    /// The rows whose key is less than this one (the last `limit` of them).
    Before(i64),
    /// The last rows.
    End,
}

/// One page of a list: how many rows, from where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListPage {
    /// Rows per page.
    pub limit: i64,
    /// Where the page starts.
    pub seek: Seek,
}

/// The SQL that selects a [`ListPage`]: a condition to join to the query's filter (`None`:
/// none), the `ORDER BY … LIMIT …` tail, and the values of its placeholders in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageSql {
    /// `key > $n` or `key < $n`, or nothing.
    pub condition: Option<String>,
    /// `ORDER BY key ASC|DESC LIMIT $n [OFFSET $m]`.
    pub tail: String,
    /// The values of the placeholders, the condition's first.
    pub binds: Vec<i64>,
}

/// One page of rows in ascending key order, and the keys the pages beside it start from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window<T> {
    /// The rows, ascending by key.
    pub items: Vec<T>,
    /// The key the next page starts after, when rows follow.
    pub next: Option<i64>,
    /// The key the previous page ends before, when rows precede.
    pub prev: Option<i64>,
}

impl ListPage {
    /// A keyset page from the start.
    pub fn first(limit: i64) -> Self {
        Self {
            limit,
            seek: Seek::Start,
        }
    }

    /// The condition, order and limit that select this page by the integer column `key`, with
    /// placeholders numbered from `$next`. One row more than the page is read: it tells
    /// whether another page follows and is dropped by [`Self::window`].
    pub fn sql(&self, key: &str, next: usize) -> PageSql {
        let fetch = self.limit + 1;
        let (condition, order, binds) = match self.seek {
            Seek::Start => (None, "ASC", vec![fetch]),
            Seek::Offset(offset) => {
                return PageSql {
                    condition: None,
                    tail: format!("ORDER BY {key} ASC LIMIT ${next} OFFSET ${}", next + 1),
                    binds: vec![fetch, offset],
                };
            }
            Seek::After(after) => (Some(format!("{key} > ${next}")), "ASC", vec![after, fetch]),
            Seek::Before(before) => (
                Some(format!("{key} < ${next}")),
                "DESC",
                vec![before, fetch],
            ),
            Seek::End => (None, "DESC", vec![fetch]),
        };
        let limit = next + binds.len() - 1;
        PageSql {
            condition,
            tail: format!("ORDER BY {key} {order} LIMIT ${limit}"),
            binds,
        }
    }

    /// The page from the rows [`Self::sql`] selected (at most `limit + 1`, in its order): the
    /// first `limit` in ascending key order, and the cursors of the pages beside it.
    pub fn window<T>(&self, mut rows: Vec<T>, key: impl Fn(&T) -> i64) -> Window<T> {
        let limit = usize::try_from(self.limit).unwrap_or(0);
        let more = rows.len() > limit;
        rows.truncate(limit);
        let descending = matches!(self.seek, Seek::Before(_) | Seek::End);
        if descending {
            rows.reverse();
        }
        let first = rows.first().map(&key);
        let last = rows.last().map(&key);
        let (next, prev) = match self.seek {
            Seek::Start => (last.filter(|_| more), None),
            Seek::Offset(offset) => (last.filter(|_| more), first.filter(|_| offset > 0)),
            // The cursor's own row follows a `before` page; one precedes an `after` page. An
            // empty page (past the end, or rows deleted meanwhile) links back to the cursor's
            // side from the cursor itself, so a client is never left with no way back.
            Seek::After(after) => (
                last.filter(|_| more),
                first.or(Some(after.saturating_add(1))),
            ),
            Seek::Before(before) => (
                last.or(Some(before.saturating_sub(1))),
                first.filter(|_| more),
            ),
            Seek::End => (None, first.filter(|_| more)),
        };
        Window {
            items: rows,
            next,
            prev,
        }
    }
}

/// Which total a list answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Total {
    /// Counted: `X-Total-Count`.
    Exact(i64),
    /// The database's estimate: `X-Total-Count-Estimate`.
    Estimate(i64),
    /// None (not asked for, and no cheap estimate).
    Unknown,
}

/// What a list request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListRequest {
    /// One page, and whether to count every row.
    Page {
        /// The page.
        page: ListPage,
        /// `?count=exact`.
        exact_count: bool,
    },
    /// The rows with these ids (deduplicated, ascending).
    Ids(Vec<i64>),
}

/// An opaque cursor: base64url of `scope:key`, so a cursor of one list is not taken by another.
pub fn encode_cursor(scope: &str, key: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{scope}:{key}"))
}

/// The key of a cursor [`encode_cursor`] made for `scope`; 400 for anything else.
pub fn decode_cursor(scope: &str, cursor: &str) -> Result<i64, ApiError> {
    let invalid = || {
        ApiError::BadRequest(format!(
            "'{}' is not a cursor of this list (use the Link header's URLs)",
            cursor.chars().take(MAX_CURSOR_LEN).collect::<String>()
        ))
    };
    if cursor.len() > MAX_CURSOR_LEN {
        return Err(invalid());
    }
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let text = std::str::from_utf8(&bytes).map_err(|_| invalid())?;
    let (cursor_scope, key) = text.split_once(':').ok_or_else(invalid)?;
    if cursor_scope != scope {
        return Err(invalid());
    }
    key.parse::<i64>().map_err(|_| invalid())
}

impl ListQuery {
    /// Validates the query for the list whose cursors carry `scope`: 400 for a limit over
    /// 1000, an offset over 10000, ids that are not integers, a cursor of another list, or
    /// `after`, `before`, `offset` and `ids` combined.
    pub fn into_request(self, scope: &str) -> Result<ListRequest, ApiError> {
        let positions = [
            self.after.is_some(),
            self.before.is_some(),
            self.offset.is_some(),
            self.ids.is_some(),
        ];
        if positions.iter().filter(|given| **given).count() > 1 {
            return Err(ApiError::BadRequest(
                "after, before, offset and ids cannot be combined".to_owned(),
            ));
        }
        let exact_count = match self.count.as_deref() {
            None => false,
            Some("exact") => true,
            Some(other) => {
                return Err(ApiError::BadRequest(format!(
                    "count: '{}' is not a count mode (only 'exact')",
                    other.chars().take(32).collect::<String>()
                )));
            }
        };
        let limit = checked_limit(self.limit).map_err(ApiError::BadRequest)?;
        if let Some(ids) = self.ids {
            return parse_ids(&ids).map(ListRequest::Ids);
        }
        let seek = if let Some(after) = self.after {
            Seek::After(decode_cursor(scope, &after)?)
        } else if let Some(before) = self.before {
            Seek::Before(decode_cursor(scope, &before)?)
        } else if let Some(offset) = self.offset {
            Seek::Offset(
                Page::new(Some(0), Some(offset))
                    .map_err(ApiError::BadRequest)?
                    .offset,
            )
        } else {
            Seek::Start
        };
        Ok(ListRequest::Page {
            page: ListPage { limit, seek },
            exact_count,
        })
    }
}

fn parse_ids(ids: &str) -> Result<Vec<i64>, ApiError> {
    let mut parsed = ids
        .split(',')
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .map(|id| {
            id.parse::<i64>().map_err(|_| {
                ApiError::BadRequest(format!(
                    "ids: '{}' is not an integer id",
                    id.chars().take(32).collect::<String>()
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    parsed.sort_unstable();
    parsed.dedup();
    if parsed.len() > MAX_LIMIT as usize {
        return Err(ApiError::BadRequest(format!(
            "ids: at most {MAX_LIMIT} ids per request"
        )));
    }
    Ok(parsed)
}

/// The `Link` header value (RFC 8288) of a page of the list at `base` (a path, with the query
/// parameters the list was filtered by, if any): `rel="next"` and `rel="prev"` by cursor,
/// `rel="first"`.
pub fn links<T>(base: &str, scope: &str, limit: i64, window: &Window<T>) -> String {
    let join = if base.contains('?') { '&' } else { '?' };
    let mut links = Vec::with_capacity(3);
    if let Some(next) = window.next {
        links.push(format!(
            "<{base}{join}limit={limit}&after={}>; rel=\"next\"",
            encode_cursor(scope, next)
        ));
    }
    if let Some(prev) = window.prev {
        links.push(format!(
            "<{base}{join}limit={limit}&before={}>; rel=\"prev\"",
            encode_cursor(scope, prev)
        ));
    }
    links.push(format!("<{base}{join}limit={limit}>; rel=\"first\""));
    links.join(", ")
}

/// A JSON array response with its `Link` header (when it has one) and its total.
pub fn list_response<T: Serialize>(items: &[T], link: Option<&str>, total: Total) -> HttpResponse {
    let mut response = HttpResponse::Ok();
    if let Some(link) = link {
        response.insert_header((actix_web::http::header::LINK, link));
    }
    match total {
        Total::Exact(total) => {
            response.insert_header((TOTAL_COUNT_HEADER, total));
        }
        Total::Estimate(estimate) => {
            response.insert_header((TOTAL_ESTIMATE_HEADER, estimate));
        }
        Total::Unknown => {}
    }
    response.json(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(limit: Option<u32>, ids: Option<&str>) -> ListQuery {
        ListQuery {
            limit,
            ids: ids.map(str::to_owned),
            ..ListQuery::default()
        }
    }

    fn page(request: ListRequest) -> ListPage {
        match request {
            ListRequest::Page { page, .. } => page,
            ListRequest::Ids(ids) => panic!("a page, not ids {ids:?}"),
        }
    }

    #[test]
    fn pages_default_and_cap() {
        assert_eq!(
            page(query(None, None).into_request("users").expect("ok")),
            ListPage::first(100)
        );
        assert_eq!(
            page(query(Some(1000), None).into_request("users").expect("ok")),
            ListPage::first(1000)
        );
        assert!(matches!(
            query(Some(1001), None).into_request("users"),
            Err(ApiError::BadRequest(_))
        ));
        let deep = ListQuery {
            offset: Some(MAX_OFFSET + 1),
            ..ListQuery::default()
        };
        assert!(
            matches!(deep.into_request("users"), Err(ApiError::BadRequest(message)) if message.contains("cursor"))
        );
        assert!(Page::new(None, Some(MAX_OFFSET + 1)).is_err());
    }

    #[test]
    fn ids_are_parsed_sorted_and_deduplicated() {
        assert_eq!(
            query(None, Some("3, 1,3,,2"))
                .into_request("users")
                .expect("ok"),
            ListRequest::Ids(vec![1, 2, 3])
        );
        assert!(matches!(
            query(None, Some("1,x")).into_request("users"),
            Err(ApiError::BadRequest(_))
        ));
        let too_many = (0..1001)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",");
        assert!(matches!(
            query(None, Some(&too_many)).into_request("users"),
            Err(ApiError::BadRequest(_))
        ));
    }

    #[test]
    fn cursors_round_trip_within_their_list_only() {
        let cursor = encode_cursor("users", 42);
        assert_eq!(decode_cursor("users", &cursor).expect("ours"), 42);
        for bad in [
            encode_cursor("products", 42),
            "not a cursor".to_owned(),
            URL_SAFE_NO_PAD.encode("users:forty-two"),
            URL_SAFE_NO_PAD.encode([0xff, 0xfe]),
            "A".repeat(MAX_CURSOR_LEN + 1),
            String::new(),
        ] {
            assert!(
                matches!(decode_cursor("users", &bad), Err(ApiError::BadRequest(_))),
                "{bad:?}"
            );
        }
        let request = ListQuery {
            after: Some(cursor.clone()),
            limit: Some(10),
            count: Some("exact".to_owned()),
            ..ListQuery::default()
        };
        assert_eq!(
            request.into_request("users").expect("ok"),
            ListRequest::Page {
                page: ListPage {
                    limit: 10,
                    seek: Seek::After(42)
                },
                exact_count: true
            }
        );
    }

    #[test]
    fn positions_and_count_modes_are_checked() {
        let cursor = encode_cursor("users", 1);
        let combined = [
            ListQuery {
                after: Some(cursor.clone()),
                before: Some(cursor.clone()),
                ..ListQuery::default()
            },
            ListQuery {
                after: Some(cursor.clone()),
                offset: Some(1),
                ..ListQuery::default()
            },
            ListQuery {
                before: Some(cursor),
                ids: Some("1".to_owned()),
                ..ListQuery::default()
            },
            ListQuery {
                count: Some("estimate".to_owned()),
                ..ListQuery::default()
            },
        ];
        for query in combined {
            let shown = format!("{query:?}");
            assert!(
                matches!(query.into_request("users"), Err(ApiError::BadRequest(_))),
                "{shown}"
            );
        }
    }

    #[test]
    fn page_sql_seeks_the_key() {
        let sql = |seek| ListPage { limit: 10, seek }.sql("id", 2);
        assert_eq!(
            sql(Seek::Start),
            PageSql {
                condition: None,
                tail: "ORDER BY id ASC LIMIT $2".to_owned(),
                binds: vec![11]
            }
        );
        assert_eq!(
            sql(Seek::After(5)),
            PageSql {
                condition: Some("id > $2".to_owned()),
                tail: "ORDER BY id ASC LIMIT $3".to_owned(),
                binds: vec![5, 11]
            }
        );
        assert_eq!(
            sql(Seek::Before(5)),
            PageSql {
                condition: Some("id < $2".to_owned()),
                tail: "ORDER BY id DESC LIMIT $3".to_owned(),
                binds: vec![5, 11]
            }
        );
        assert_eq!(
            sql(Seek::Offset(30)),
            PageSql {
                condition: None,
                tail: "ORDER BY id ASC LIMIT $2 OFFSET $3".to_owned(),
                binds: vec![11, 30]
            }
        );
        assert_eq!(sql(Seek::End).tail, "ORDER BY id DESC LIMIT $2");
    }

    /// Walks a table of keys 1..=25 forwards and backwards by cursor, as SQL would answer.
    #[test]
    fn windows_walk_the_whole_table_both_ways() {
        let table: Vec<i64> = (1..=25).collect();
        let select = |page: ListPage| -> Vec<i64> {
            let fetch = usize::try_from(page.limit + 1).expect("small");
            match page.seek {
                Seek::Start => table.iter().copied().take(fetch).collect(),
                Seek::Offset(offset) => table
                    .iter()
                    .copied()
                    .skip(usize::try_from(offset).expect("small"))
                    .take(fetch)
                    .collect(),
                Seek::After(key) => table
                    .iter()
                    .copied()
                    .filter(|k| *k > key)
                    .take(fetch)
                    .collect(),
                Seek::Before(key) => table
                    .iter()
                    .rev()
                    .copied()
                    .filter(|k| *k < key)
                    .take(fetch)
                    .collect(),
                Seek::End => table.iter().rev().copied().take(fetch).collect(),
            }
        };
        let mut seen = Vec::new();
        let mut page = ListPage::first(10);
        let mut windows = Vec::new();
        loop {
            let window = page.window(select(page), |k| *k);
            seen.extend(window.items.iter().copied());
            windows.push(window.clone());
            match window.next {
                Some(next) => page.seek = Seek::After(next),
                None => break,
            }
        }
        assert_eq!(seen, table, "forwards, every key once");
        assert_eq!(windows.len(), 3);
        assert_eq!(windows[0].prev, None);
        assert_eq!(windows[2].next, None);

        let mut seen = Vec::new();
        let mut page = ListPage {
            limit: 10,
            seek: Seek::End,
        };
        loop {
            let window = page.window(select(page), |k| *k);
            let mut items = window.items.clone();
            items.extend(seen);
            seen = items;
            match window.prev {
                Some(prev) => page.seek = Seek::Before(prev),
                None => break,
            }
        }
        assert_eq!(seen, table, "backwards, every key once");

        let offset = ListPage {
            limit: 10,
            seek: Seek::Offset(20),
        };
        let window = offset.window(select(offset), |k| *k);
        assert_eq!(window.items, (21..=25).collect::<Vec<_>>());
        assert_eq!((window.next, window.prev), (None, Some(21)));
        let empty = ListPage {
            limit: 0,
            seek: Seek::Start,
        };
        let window = empty.window(select(empty), |k| *k);
        assert!(window.items.is_empty());
        assert_eq!((window.next, window.prev), (None, None));
    }

    #[test]
    fn an_empty_cursor_page_links_back_to_its_cursor() {
        let after = ListPage {
            limit: 10,
            seek: Seek::After(40),
        };
        let window = after.window(Vec::<i64>::new(), |k| *k);
        assert_eq!((window.next, window.prev), (None, Some(41)));
        let before = ListPage {
            limit: 10,
            seek: Seek::Before(40),
        };
        let window = before.window(Vec::<i64>::new(), |k| *k);
        assert_eq!((window.next, window.prev), (Some(39), None));
        let checked = ListQuery {
            ids: Some("1".to_owned()),
            count: Some("bogus".to_owned()),
            ..ListQuery::default()
        };
        assert!(matches!(
            checked.into_request("users"),
            Err(ApiError::BadRequest(_))
        ));
        let checked = ListQuery {
            ids: Some("1".to_owned()),
            limit: Some(5000),
            ..ListQuery::default()
        };
        assert!(matches!(
            checked.into_request("users"),
            Err(ApiError::BadRequest(_))
        ));
    }

    #[test]
    fn links_carry_the_filter_limit_and_cursors() {
        let window = Window {
            items: vec![3, 4],
            next: Some(4),
            prev: Some(3),
        };
        let link = links("/api/media?visibility=public", "media", 2, &window);
        assert_eq!(
            link,
            format!(
                "</api/media?visibility=public&limit=2&after={}>; rel=\"next\", \
                 </api/media?visibility=public&limit=2&before={}>; rel=\"prev\", \
                 </api/media?visibility=public&limit=2>; rel=\"first\"",
                encode_cursor("media", 4),
                encode_cursor("media", 3)
            )
        );
        let last = Window {
            items: vec![5],
            next: None,
            prev: None,
        };
        assert_eq!(
            links("/api/users", "users", 100, &last),
            "</api/users?limit=100>; rel=\"first\""
        );
    }
}
