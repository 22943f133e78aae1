//! `?limit=&offset=` (default 100, at most 1000), the `?ids=1,2,3` batch filter, and the
//! `X-Total-Count` header of list responses.

use actix_web::{HttpResponse, http::header::HeaderName};
use serde::{Deserialize, Serialize};
use utoipa::IntoParams;

use crate::ApiError;

/// The header that carries the total number of rows behind a page.
pub const TOTAL_COUNT_HEADER: HeaderName = HeaderName::from_static("x-total-count");
/// Page size when `limit` is absent.
pub const DEFAULT_LIMIT: u32 = 100;
/// The largest page, and the most ids one batch may name.
pub const MAX_LIMIT: u32 = 1000;

/// The query string of a list endpoint.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Rows per page (0–1000, default 100).
    #[param(minimum = 0, maximum = 1000)]
    pub limit: Option<u32>,
    /// Rows to skip (default 0).
    #[param(minimum = 0)]
    pub offset: Option<u32>,
    /// Comma-separated ids (at most 1000): returns just those rows that exist, by id.
    #[param(example = "1,2,3")]
    pub ids: Option<String>,
}

/// A validated page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// Rows per page.
    pub limit: i64,
    /// Rows to skip.
    pub offset: i64,
}

impl Page {
    /// A page from optional `limit` (default 100, at most 1000) and `offset` (default 0);
    /// the error names what is wrong.
    pub fn new(limit: Option<u32>, offset: Option<u32>) -> Result<Self, String> {
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        if limit > MAX_LIMIT {
            return Err(format!("limit must be between 0 and {MAX_LIMIT}"));
        }
        Ok(Self {
            limit: i64::from(limit),
            offset: i64::from(offset.unwrap_or(0)),
        })
    }
}

/// What a list request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListRequest {
    /// One page of all rows.
    Page(Page),
    /// The rows with these ids (deduplicated, ascending).
    Ids(Vec<i64>),
}

impl ListQuery {
    /// Validates the query: 400 for a limit over 1000 or ids that are not integers.
    pub fn into_request(self) -> Result<ListRequest, ApiError> {
        if let Some(ids) = self.ids {
            let mut parsed = ids
                .split(',')
                .map(str::trim)
                .filter(|id| !id.is_empty())
                .map(|id| {
                    id.parse::<i64>().map_err(|_| {
                        ApiError::BadRequest(format!("ids: '{id}' is not an integer id"))
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
            return Ok(ListRequest::Ids(parsed));
        }
        Page::new(self.limit, self.offset)
            .map(ListRequest::Page)
            .map_err(ApiError::BadRequest)
    }
}

/// A JSON array response with `X-Total-Count`.
pub fn list_response<T: Serialize>(items: &[T], total: i64) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((TOTAL_COUNT_HEADER, total))
        .json(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(limit: Option<u32>, ids: Option<&str>) -> ListQuery {
        ListQuery {
            limit,
            offset: None,
            ids: ids.map(str::to_owned),
        }
    }

    #[test]
    fn pages_default_and_cap() {
        assert_eq!(
            query(None, None).into_request().expect("ok"),
            ListRequest::Page(Page {
                limit: 100,
                offset: 0
            })
        );
        assert_eq!(
            query(Some(1000), None).into_request().expect("ok"),
            ListRequest::Page(Page {
                limit: 1000,
                offset: 0
            })
        );
        assert!(matches!(
            query(Some(1001), None).into_request(),
            Err(ApiError::BadRequest(_))
        ));
    }

    #[test]
    fn ids_are_parsed_sorted_and_deduplicated() {
        assert_eq!(
            query(None, Some("3, 1,3,,2")).into_request().expect("ok"),
            ListRequest::Ids(vec![1, 2, 3])
        );
        assert!(matches!(
            query(None, Some("1,x")).into_request(),
            Err(ApiError::BadRequest(_))
        ));
        let too_many = (0..1001)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",");
        assert!(matches!(
            query(None, Some(&too_many)).into_request(),
            Err(ApiError::BadRequest(_))
        ));
    }
}
