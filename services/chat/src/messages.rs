//! `GET /chat/rooms/{room}/messages?limit=&before=&after=`: a room's history a page at a time,
//! by cursor on the order the server accepted the messages in (the shared
//! [`server::ListQuery`], without its `offset`, `ids` and `count`: 400).
//!
//! Without a cursor the answer is the newest page; `before=` (the `Link` header's `rel="prev"`)
//! reaches older messages and `after=` (`rel="next"`) newer ones. Within a page the messages
//! are oldest first, as the `history` event lists them. Whoever may join the room may read it:
//! the token is the `Authorization` header's, and without one a guest is let in when the chat
//! takes guests ([`crate::access::identify`]).

use actix_web::{HttpRequest, HttpResponse, http::header, web};
use server::{ApiError, ListQuery, ListRequest, Seek, Total, links, list_response};

use crate::{access, history::History, hub::Hub, protocol::check_room};

/// The scope of the history's cursors.
pub const SCOPE: &str = "chat";
/// Messages per page when `limit` is absent (the `history` event's length).
pub const DEFAULT_LIMIT: u32 = 50;

/// One page of a room's messages: the JSON array, oldest first, with its `Link` header.
pub async fn messages(
    request: HttpRequest,
    room: web::Path<String>,
    query: web::Query<ListQuery>,
    hub: web::Data<Hub>,
    history: web::Data<History>,
) -> Result<HttpResponse, ApiError> {
    let room = check_room(Some(room.as_str())).map_err(ApiError::BadRequest)?;
    // `.` and `..` are rooms, but not path segments: clients resolve them away (RFC 3986).
    if room == "." || room == ".." {
        return Err(ApiError::BadRequest(
            "the rooms `.` and `..` have no history URL; read them over the WebSocket".to_owned(),
        ));
    }
    let presented = access::Presented::in_header(&request);
    access::identify(&request, &presented, hub.settings().guests).await?;
    let mut query = query.into_inner();
    if query.offset.is_some() || query.ids.is_some() || query.count.is_some() {
        return Err(ApiError::BadRequest(
            "the chat history takes limit, before and after only (no offset, ids or count)"
                .to_owned(),
        ));
    }
    query.limit = Some(query.limit.unwrap_or(DEFAULT_LIMIT));
    let ListRequest::Page { mut page, .. } = query.into_request(SCOPE)? else {
        return Err(ApiError::BadRequest(
            "a page of messages is reached by limit, before and after".to_owned(),
        ));
    };
    if page.seek == Seek::Start {
        page.seek = Seek::End;
    }
    let window = history
        .page(&room, &page)
        .await
        .map_err(|error| ApiError::Internal(error.into()))?;
    let base = format!("/chat/rooms/{}/messages", percent_encode(&room));
    let link = links(&base, SCOPE, page.limit, &window);
    let mut response = list_response(&window.items, Some(&link), Total::Unknown);
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    Ok(response)
}

/// `text` with every byte but RFC 3986's unreserved characters percent-encoded, for a path
/// segment. Room names are unreserved characters only, so they come out as they are.
pub fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| {
            if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
                char::from(byte).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(percent_encode("general-2_b.c~"), "general-2_b.c~");
        assert_eq!(percent_encode("a b/c?d%"), "a%20b%2Fc%3Fd%25");
        assert_eq!(percent_encode("é"), "%C3%A9");
    }
}
