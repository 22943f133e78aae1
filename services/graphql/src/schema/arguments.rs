//! The arguments every resolver reads the same way: ids, and `limit`/`offset` pages; a bad
//! one is a `BAD_USER_INPUT` error.

use async_graphql::{ID, Result};
use server::{MAX_LIMIT, Page};

use super::errors::{coded_error, codes};

/// The positive integer id `id` names, or `BAD_USER_INPUT` naming `argument`.
pub(crate) fn parse_id(id: &ID, argument: &str) -> Result<i64> {
    id.parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(|| {
        coded_error(
            codes::BAD_USER_INPUT,
            format!("{argument}: '{}' is not a valid id", id.as_str()),
        )
    })
}

/// The page `limit` and `offset` name (`limit` defaults to `default`), or `BAD_USER_INPUT`.
pub(crate) fn page(limit: Option<i32>, offset: Option<i32>, default: u32) -> Result<Page> {
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
