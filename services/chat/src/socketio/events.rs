//! The room's events as a Socket.IO client receives them: the hub carries every event as the
//! native protocol's JSON (`{"type":"chatMessage",…}`) in WebSocket text frames encoded once
//! for all members ([`crate::frames::Frames`]); a Socket.IO member reads those frames back and
//! sends each event as `42["chatMessage",{…}]`, the same object without its `type`. So the
//! payloads Socket.IO chat clients read (`welcome`, `userJoined`, `userLeft`: `{message}`; `chatMessage`:
//! `{text, timestamp}`) arrive with the platform's fields beside them.

use crate::socketio::{engine_packet, socket_packet};

/// The payloads of server WebSocket frames back to back (unmasked, as
/// [`crate::frames::Frames`] writes them); stops at a frame cut short.
pub fn frame_payloads(mut bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        let [_, length, rest @ ..] = bytes else {
            return None;
        };
        let (length, rest) = match length & 0x7f {
            126 => {
                let (size, rest) = rest.split_first_chunk::<2>()?;
                (usize::from(u16::from_be_bytes(*size)), rest)
            }
            127 => {
                let (size, rest) = rest.split_first_chunk::<8>()?;
                (usize::try_from(u64::from_be_bytes(*size)).ok()?, rest)
            }
            short => (usize::from(short), rest),
        };
        let payload = rest.get(..length)?;
        bytes = &rest[length..];
        Some(payload)
    })
}

/// A native event (`{"type":"<name>",…}`) as the Engine.IO message of a Socket.IO `EVENT`
/// (`42["<name>",{…}]`).
pub fn from_native(json: &[u8]) -> String {
    let text = String::from_utf8_lossy(json);
    // The server's events put `type` first, a camelCase name: cut it out as text.
    if let Some(after) = text.strip_prefix(r#"{"type":""#)
        && let Some((name, rest)) = after.split_once('"')
        && name.bytes().all(|byte| byte.is_ascii_alphanumeric())
    {
        let data = match rest.strip_prefix(',') {
            Some(fields) => format!("{{{fields}"),
            None => "{}".to_owned(),
        };
        return engine_packet::message(&socket_packet::event(name, &data));
    }
    // Any other shape: through serde.
    let mut value: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    let name = value
        .as_object_mut()
        .and_then(|object| object.remove("type"))
        .and_then(|name| name.as_str().map(str::to_owned))
        .unwrap_or_else(|| "message".to_owned());
    engine_packet::message(&socket_packet::event(&name, &value.to_string()))
}

#[cfg(test)]
mod tests {
    use bytestring::ByteString;

    use super::*;
    use crate::frames::{Event, Frames};

    #[test]
    fn native_events_become_socket_io_events() {
        assert_eq!(
            from_native(br#"{"type":"chatMessage","id":"1","text":"hi"}"#),
            r#"42["chatMessage",{"id":"1","text":"hi"}]"#
        );
        assert_eq!(from_native(br#"{"type":"ping"}"#), r#"42["ping",{}]"#);
        assert_eq!(
            from_native(br#"{"text":"x","type":"odd"}"#),
            r#"42["odd",{"text":"x"}]"#
        );
    }

    #[test]
    fn frames_read_back_at_every_length_encoding() {
        let texts = ["{}".to_owned(), "a".repeat(200), "b".repeat(70_000)];
        let events: Vec<Event> = texts
            .iter()
            .map(|text| Event {
                frame: ByteString::from(text.as_str()),
                message_id: None,
            })
            .collect();
        let frames = Frames::encode(&events);
        let read: Vec<&[u8]> = frame_payloads(&frames.bytes).collect();
        assert_eq!(read, texts.iter().map(String::as_bytes).collect::<Vec<_>>());
        assert_eq!(
            frame_payloads(&frames.bytes[..10]).count(),
            1,
            "a cut frame is not read"
        );
    }
}
