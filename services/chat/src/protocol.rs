//! The chat protocol of docs/contracts.md: what clients send, what the server sends, and the checks
//! on rooms and messages (names are the server's: [`crate::access`]).

use serde::Serialize;

/// The room a client joins when it names none.
pub const DEFAULT_ROOM: &str = "general";
/// Longest room name, in characters.
pub const MAX_ROOM_CHARS: usize = 64;

/// A stored chat message, as history lists it and `chatMessage` carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChatMessage {
    /// Server-assigned id (a UUID).
    pub id: String,
    /// The room it was sent to.
    pub room: String,
    /// Who sent it.
    pub user: String,
    /// The sender's account id; absent for a guest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<i64>,
    /// What they wrote (1–2000 characters, as sent).
    pub text: String,
    /// When the server accepted it (RFC 3339, UTC, milliseconds).
    pub timestamp: String,
}

/// Every event the server sends; serialised with its `type`.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ServerEvent<'a> {
    /// To a client that just connected.
    Welcome {
        /// A greeting.
        message: String,
        /// The room it joined.
        room: &'a str,
        /// Its name: the account's, or the `guest-xxxx` the server assigned.
        user: &'a str,
        /// Its account id; absent for a guest.
        #[serde(skip_serializing_if = "Option::is_none")]
        user_id: Option<i64>,
    },
    /// The room's recent messages, oldest first, right after `welcome`.
    History {
        /// The messages.
        messages: &'a [ChatMessage],
    },
    /// To the others in the room when someone joins.
    UserJoined {
        /// Who.
        user: &'a str,
        /// Their account id; absent for a guest.
        #[serde(skip_serializing_if = "Option::is_none")]
        user_id: Option<i64>,
        /// Where.
        room: &'a str,
        /// A sentence for humans.
        message: String,
    },
    /// To the others in the room when someone leaves (however the connection ended).
    UserLeft {
        /// Who.
        user: &'a str,
        /// Their account id; absent for a guest.
        #[serde(skip_serializing_if = "Option::is_none")]
        user_id: Option<i64>,
        /// Where.
        room: &'a str,
        /// A sentence for humans.
        message: String,
    },
    /// A message, to everyone in the room, the sender included.
    ChatMessage(&'a ChatMessage),
    /// Something the client sent was refused; the connection stays open.
    Error {
        /// Machine-readable (see [`ErrorCode`]).
        code: ErrorCode,
        /// For humans.
        message: String,
    },
}

impl ServerEvent<'_> {
    /// The JSON text frame.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("server events serialise to JSON")
    }
}

/// The `code` of an `error` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame is not a JSON object with a string `type` (or is binary).
    InvalidJson,
    /// `type` names no client event.
    UnknownType,
    /// The event's fields are wrong (`text` missing, empty, or too long).
    ValidationFailed,
    /// Over the per-connection rate; the message was dropped.
    RateLimited,
    /// The message could not be stored or delivered (database or Redis down).
    Unavailable,
}

/// What a client may send.
#[derive(Debug, PartialEq, Eq)]
pub enum ClientEvent {
    /// `{"type":"chatMessage","text":"hi"}`.
    ChatMessage {
        /// The text, checked.
        text: String,
    },
}

/// Why a client frame was refused.
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The error code sent back.
    pub code: ErrorCode,
    /// The message sent back.
    pub message: String,
}

impl Refusal {
    /// A refusal with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// Reads a client text frame: a JSON object with a known `type` and valid fields.
pub fn parse_client_event(frame: &str, max_text_chars: usize) -> Result<ClientEvent, Refusal> {
    let value: serde_json::Value = serde_json::from_str(frame)
        .map_err(|error| Refusal::new(ErrorCode::InvalidJson, format!("invalid JSON: {error}")))?;
    let Some(kind) = value.get("type").and_then(serde_json::Value::as_str) else {
        return Err(Refusal::new(
            ErrorCode::InvalidJson,
            "expected a JSON object with a string \"type\"",
        ));
    };
    match kind {
        "chatMessage" => {
            let text = check_text(value.get("text"), max_text_chars)?;
            Ok(ClientEvent::ChatMessage { text })
        }
        other => Err(Refusal::new(
            ErrorCode::UnknownType,
            format!(
                "unknown event type {:?} (expected chatMessage)",
                truncate(other, 40)
            ),
        )),
    }
}

/// A chat message's `text` field: a string, not blank, at most `max_text_chars` characters.
pub fn check_text(
    text: Option<&serde_json::Value>,
    max_text_chars: usize,
) -> Result<String, Refusal> {
    let Some(text) = text.and_then(serde_json::Value::as_str) else {
        return Err(Refusal::new(
            ErrorCode::ValidationFailed,
            "chatMessage needs a string \"text\"",
        ));
    };
    if text.trim().is_empty() {
        return Err(Refusal::new(
            ErrorCode::ValidationFailed,
            "text must not be empty",
        ));
    }
    if text.chars().count() > max_text_chars {
        return Err(Refusal::new(
            ErrorCode::ValidationFailed,
            format!("text must be at most {max_text_chars} characters"),
        ));
    }
    Ok(text.to_owned())
}

/// A room name: 1–64 of `A-Z a-z 0-9 - _ .`; missing or empty gives `general`.
pub fn check_room(room: Option<&str>) -> Result<String, String> {
    let room = room.map(str::trim).unwrap_or("");
    if room.is_empty() {
        return Ok(DEFAULT_ROOM.to_owned());
    }
    if room.chars().count() > MAX_ROOM_CHARS {
        return Err(format!("room must be at most {MAX_ROOM_CHARS} characters"));
    }
    if !room
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err("room may contain only letters, digits, '-', '_' and '.'".to_owned());
    }
    Ok(room.to_owned())
}

fn truncate(text: &str, chars: usize) -> String {
    text.chars().take(chars).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_events_are_checked() {
        assert_eq!(
            parse_client_event(r#"{"type":"chatMessage","text":"hi"}"#, 2000),
            Ok(ClientEvent::ChatMessage { text: "hi".into() })
        );
        let code = |frame: &str| parse_client_event(frame, 5).expect_err("refused").code;
        assert_eq!(code("not json"), ErrorCode::InvalidJson);
        assert_eq!(code("[1]"), ErrorCode::InvalidJson);
        assert_eq!(code(r#"{"type":1}"#), ErrorCode::InvalidJson);
        assert_eq!(code(r#"{"type":"dance"}"#), ErrorCode::UnknownType);
        assert_eq!(
            code(r#"{"type":"chatMessage"}"#),
            ErrorCode::ValidationFailed
        );
        assert_eq!(
            code(r#"{"type":"chatMessage","text":"  "}"#),
            ErrorCode::ValidationFailed
        );
        assert_eq!(
            code(r#"{"type":"chatMessage","text":"123456"}"#),
            ErrorCode::ValidationFailed
        );
        assert!(parse_client_event(r#"{"type":"chatMessage","text":"ééééé"}"#, 5).is_ok());
    }

    #[test]
    fn rooms_are_checked() {
        assert_eq!(check_room(None), Ok("general".into()));
        assert_eq!(check_room(Some("")), Ok("general".into()));
        assert_eq!(
            check_room(Some("rust-2024_v1.0")),
            Ok("rust-2024_v1.0".into())
        );
        assert!(check_room(Some("a b")).is_err());
        assert!(check_room(Some("<script>")).is_err());
        assert!(check_room(Some(&"r".repeat(65))).is_err());
    }

    #[test]
    fn events_serialise_with_their_type() {
        let message = ChatMessage {
            id: "1".into(),
            room: "general".into(),
            user: "alice".into(),
            user_id: None,
            text: "hi".into(),
            timestamp: "t".into(),
        };
        let json: serde_json::Value =
            serde_json::from_str(&ServerEvent::ChatMessage(&message).to_json()).expect("json");
        assert_eq!(
            json,
            serde_json::json!({"type":"chatMessage","id":"1","room":"general","user":"alice","text":"hi","timestamp":"t"}),
            "a guest's message has no user_id"
        );
        let signed_in = ChatMessage {
            user_id: Some(7),
            ..message
        };
        let json: serde_json::Value =
            serde_json::from_str(&ServerEvent::ChatMessage(&signed_in).to_json()).expect("json");
        assert_eq!(json["user_id"], 7);
        let json: serde_json::Value = serde_json::from_str(
            &ServerEvent::Error {
                code: ErrorCode::RateLimited,
                message: "slow down".into(),
            }
            .to_json(),
        )
        .expect("json");
        assert_eq!(json["code"], "rate_limited");
        assert_eq!(json["type"], "error");
    }
}
