//! `Query.postsConnection`: posts by id as a connection of the GraphQL Cursor Connections
//! specification (Relay): `first`/`after` page forwards, `last`/`before` backwards, and each
//! page is one keyset page of [`server::pagination`] (a range of an index read in order), so a
//! page costs the same wherever it is in the table.
//!
//! Cursors are [`server::encode_cursor`]'s, scope `posts`: opaque to clients, and a
//! cursor of another list is refused. The arguments' rules:
//!
//! - `first` and `last` are 0 to [`MAX_LIMIT`]; when neither is given a page has
//!   [`DEFAULT_FIRST`] posts (forwards, or backwards when `before` is given);
//! - `first` pairs with `after`, `last` with `before`: `first` with `last` or `before`, `last`
//!   with `after`, and `after` with `before` are refused, as is a cursor that is not one of
//!   this list's; every refusal is a `BAD_USER_INPUT` error.

use async_graphql::{
    Result,
    connection::{
        Connection, DefaultConnectionName, DefaultEdgeName, DisableNodesField, Edge, EmptyFields,
    },
};
use server::{ListPage, MAX_LIMIT, Seek, decode_cursor, encode_cursor};

use super::{
    errors::{coded_error, codes},
    types::Post,
};

/// Posts per page when neither `first` nor `last` is given.
pub const DEFAULT_FIRST: u32 = 20;

/// The scope of this list's cursors (a cursor of another list is refused).
pub const CURSOR_SCOPE: &str = "posts";

/// The longest part of a refused cursor an error message repeats.
const SHOWN_CURSOR_CHARS: usize = 64;

/// The GraphQL types `PostConnection { edges, pageInfo }` and `PostEdge { cursor, node }`.
pub type PostConnection = Connection<
    String,
    Post,
    EmptyFields,
    EmptyFields,
    DefaultConnectionName,
    DefaultEdgeName,
    DisableNodesField,
>;

fn bad_input(message: String) -> async_graphql::Error {
    coded_error(codes::BAD_USER_INPUT, message)
}

/// A page size argument, checked.
fn page_size(name: &str, value: Option<i32>) -> Result<i64> {
    let Some(value) = value else {
        return Ok(i64::from(DEFAULT_FIRST));
    };
    u32::try_from(value)
        .ok()
        .filter(|value| *value <= MAX_LIMIT)
        .map(i64::from)
        .ok_or_else(|| bad_input(format!("{name} must be between 0 and {MAX_LIMIT}")))
}

/// The post id a cursor argument names.
fn cursor(name: &str, text: &str) -> Result<i64> {
    decode_cursor(CURSOR_SCOPE, text).map_err(|_| {
        bad_input(format!(
            "{name}: '{}' is not a cursor of postsConnection (pass a cursor from its edges or \
             pageInfo)",
            text.chars().take(SHOWN_CURSOR_CHARS).collect::<String>()
        ))
    })
}

/// The page the connection's arguments ask for, or `BAD_USER_INPUT`.
pub fn page(
    first: Option<i32>,
    after: Option<&str>,
    last: Option<i32>,
    before: Option<&str>,
) -> Result<ListPage> {
    let refuse = |message: &str| Err(bad_input(message.to_owned()));
    if first.is_some() && last.is_some() {
        return refuse(
            "first and last cannot be combined: page forwards with first/after or backwards with last/before",
        );
    }
    if after.is_some() && before.is_some() {
        return refuse("after and before cannot be combined");
    }
    if first.is_some() && before.is_some() {
        return refuse("first pages forwards: use it with after (or use last with before)");
    }
    if last.is_some() && after.is_some() {
        return refuse("last pages backwards: use it with before (or use first with after)");
    }
    let backwards = last.is_some() || before.is_some();
    let limit = if backwards {
        page_size("last", last)?
    } else {
        page_size("first", first)?
    };
    let seek = match (after, before) {
        (Some(after), _) => Seek::After(cursor("after", after)?),
        (None, Some(before)) => Seek::Before(cursor("before", before)?),
        (None, None) if backwards => Seek::End,
        (None, None) => Seek::Start,
    };
    Ok(ListPage { limit, seek })
}

/// The connection of one page: its posts (ascending by id, with their ids) and whether posts
/// precede and follow it.
pub fn connection(
    has_previous_page: bool,
    has_next_page: bool,
    posts: impl IntoIterator<Item = (i64, Post)>,
) -> PostConnection {
    let mut connection = PostConnection::new(has_previous_page, has_next_page);
    connection.edges.extend(
        posts
            .into_iter()
            .map(|(id, post)| Edge::new(encode_cursor(CURSOR_SCOPE, id), post)),
    );
    connection
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(result: Result<ListPage>) -> Option<async_graphql::Value> {
        let error = result.expect_err("refused");
        error.extensions?.get("code").cloned()
    }

    #[test]
    fn arguments_name_a_keyset_page() {
        let at = encode_cursor(CURSOR_SCOPE, 7);
        let page = |first, after, last, before| page(first, after, last, before).expect("valid");
        assert_eq!(page(None, None, None, None), ListPage::first(20));
        assert_eq!(page(Some(0), None, None, None), ListPage::first(0));
        assert_eq!(
            page(Some(1000), Some(&at), None, None),
            ListPage {
                limit: 1000,
                seek: Seek::After(7)
            }
        );
        assert_eq!(
            page(None, None, Some(3), None),
            ListPage {
                limit: 3,
                seek: Seek::End
            }
        );
        assert_eq!(
            page(None, None, None, Some(&at)),
            ListPage {
                limit: 20,
                seek: Seek::Before(7)
            }
        );
    }

    #[test]
    fn hostile_arguments_are_bad_user_input() {
        let at = encode_cursor(CURSOR_SCOPE, 7);
        let other = encode_cursor("users", 7);
        for (first, after, last, before) in [
            (Some(-1), None, None, None),
            (Some(1001), None, None, None),
            (Some(i32::MAX), None, None, None),
            (None, None, Some(-5), None),
            (Some(1), None, Some(1), None),
            (Some(1), None, None, Some(at.as_str())),
            (None, Some(at.as_str()), Some(1), None),
            (None, Some(at.as_str()), None, Some(at.as_str())),
            (None, Some("not a cursor"), None, None),
            (None, Some(other.as_str()), None, None),
            (None, None, None, Some("")),
        ] {
            assert_eq!(
                code(page(first, after, last, before)),
                Some(async_graphql::Value::from(codes::BAD_USER_INPUT)),
                "{first:?} {after:?} {last:?} {before:?}"
            );
        }
    }
}
