//! A room event on the pub/sub: its channel, `<prefix>:room:<room>`, and its envelope,
//! `origin\nmessage_id\nframe`, each id a simple UUID or `-` for none. The frame goes last and
//! as it is, so a frame with newlines in it (escaped or not) survives, and the receiving
//! instance shares the payload's bytes instead of copying the frame.

use bytes::Bytes;
use bytestring::ByteString;
use uuid::Uuid;

use crate::frames::Event;

/// The channel of a room's events, for instances whose channels start with `prefix`.
pub(crate) fn room_channel(prefix: &str, room: &str) -> String {
    format!("{prefix}:room:{room}")
}

/// A room event read from its envelope.
pub(crate) struct RoomEvent {
    /// The connection it is about (`userJoined`, `userLeft`), which is not sent it.
    pub(crate) origin: Option<Uuid>,
    /// The event, its frame sharing the payload's bytes.
    pub(crate) event: Event,
}

/// The envelope of `frame`, about `origin`, carrying chat message `message_id`.
pub(crate) fn seal(origin: Option<Uuid>, message_id: Option<Uuid>, frame: &str) -> Bytes {
    let field = |id: Option<Uuid>| id.map_or_else(|| "-".to_owned(), |id| id.simple().to_string());
    Bytes::from(format!("{}\n{}\n{frame}", field(origin), field(message_id)))
}

/// The event in `payload`; `None` when it is not an envelope.
pub(crate) fn open(payload: &Bytes) -> Option<RoomEvent> {
    let field = |bytes: &[u8]| match bytes {
        b"-" => Some(None),
        id => Uuid::try_parse_ascii(id).ok().map(Some),
    };
    let first = payload.iter().position(|b| *b == b'\n')?;
    let second = first + 1 + payload[first + 1..].iter().position(|b| *b == b'\n')?;
    let origin = field(&payload[..first])?;
    let message_id = field(&payload[first + 1..second])?;
    let frame = ByteString::try_from(payload.slice(second + 1..)).ok()?;
    Some(RoomEvent {
        origin,
        event: Event { frame, message_id },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_round_trip() {
        let (origin, message) = (Uuid::new_v4(), Uuid::new_v4());
        let payload = Bytes::from(format!(
            "{}\n{message}\n{{\"x\":\"a\\nb\"}}",
            origin.simple()
        ));
        let opened = open(&payload).expect("parsed");
        assert_eq!(opened.origin, Some(origin));
        assert_eq!(opened.event.message_id, Some(message));
        assert_eq!(&*opened.event.frame, "{\"x\":\"a\\nb\"}");
        let opened = open(&Bytes::from_static(b"-\n-\n{}")).expect("parsed");
        assert_eq!((opened.origin, opened.event.message_id), (None, None));
        assert!(open(&Bytes::from_static(b"garbage")).is_none());
        assert!(open(&Bytes::from_static(b"-\nnot-an-id\n{}")).is_none());
    }

    #[test]
    fn a_sealed_envelope_opens_to_what_went_in() {
        let (origin, message) = (Uuid::new_v4(), Uuid::new_v4());
        let frame = "{\"text\":\"line one\nline two\"}";
        let opened = open(&seal(Some(origin), Some(message), frame)).expect("opened");
        assert_eq!(opened.origin, Some(origin));
        assert_eq!(opened.event.message_id, Some(message));
        assert_eq!(&*opened.event.frame, frame);
        let opened = open(&seal(None, None, "{}")).expect("opened");
        assert_eq!((opened.origin, opened.event.message_id), (None, None));
        assert_eq!(room_channel("chat", "general"), "chat:room:general");
    }
}
