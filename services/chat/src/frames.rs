//! What goes out to clients: events ([`Event`]), encoded once as WebSocket text frames
//! ([`Frames`]) that every recipient's queue shares, and what a client's outbound queue holds
//! ([`Outbound`]): those frames, heartbeats, and a Socket.IO session's own packets.

use std::{collections::HashSet, ops::Range, sync::Arc};

use actix_http::ws::{OpCode, Parser};
use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use tokio::sync::oneshot;
use uuid::Uuid;

/// A JSON event on its way to clients.
#[derive(Debug)]
pub struct Event {
    /// The text frame.
    pub frame: ByteString,
    /// The chat message's id, if it is one (to skip one already sent in the history).
    pub message_id: Option<Uuid>,
}

/// Events encoded as WebSocket text frames, back to back: encoded once, shared by every queue
/// they are in, and written to each client as they are (one encoding a delivery, not one a
/// member: docs/benchmarks.md, "What the chat-service measurements showed").
#[derive(Debug)]
pub struct Frames {
    /// The encoded frames.
    pub bytes: Bytes,
    /// The chat messages among them: id and place in `bytes` (to leave out one that the
    /// client already has from its history).
    pub messages: Vec<(Uuid, Range<usize>)>,
}

impl Frames {
    /// Encodes `events`, in order.
    pub fn encode<'a>(events: impl IntoIterator<Item = &'a Event>) -> Self {
        let mut bytes = BytesMut::new();
        let mut messages = Vec::new();
        for event in events {
            let start = bytes.len();
            Parser::write_message(
                &mut bytes,
                event.frame.as_bytes(),
                OpCode::Text,
                true,
                false,
            );
            if let Some(id) = event.message_id {
                messages.push((id, start..bytes.len()));
            }
        }
        Self {
            bytes: bytes.freeze(),
            messages,
        }
    }

    /// The frames without those of the messages in `skip` (each found is taken out of it).
    pub fn without(&self, skip: &mut HashSet<Uuid>) -> Bytes {
        if skip.is_empty() {
            return self.bytes.clone();
        }
        let mut kept = BytesMut::with_capacity(self.bytes.len());
        let mut next = 0;
        for (id, range) in &self.messages {
            if skip.remove(id) {
                kept.extend_from_slice(&self.bytes[next..range.start]);
                next = range.end;
            }
        }
        if next == 0 {
            return self.bytes.clone();
        }
        kept.extend_from_slice(&self.bytes[next..]);
        kept.freeze()
    }
}

/// What waits in a client's outbound queue. Two words: the fan-out queues one per member.
#[derive(Debug)]
pub enum Outbound {
    /// Events, in order: one, or those a busy room coalesced into one delivery.
    Frames(Arc<Frames>),
    /// A heartbeat ping.
    Ping,
    /// The answer to a client's ping (boxed: rare, and it would double the size).
    Pong(Box<Bytes>),
    /// An Engine.IO packet of a Socket.IO session, encoded (`42["error",…]`, `43…`).
    Packet(Box<String>),
    /// Packets that go out before anything queued after them, once they are ready: a Socket.IO
    /// session queues it before it joins a room, and fills it once the history is read, so
    /// the room's live events wait behind the history.
    Batch(oneshot::Receiver<Batch>),
}

/// What a Socket.IO session sends on entering a room, before the room's live events.
#[derive(Debug, Default)]
pub struct Batch {
    /// Encoded Engine.IO packets, in order (the connect answer, `welcome`, `history`, an ack).
    pub packets: Vec<String>,
    /// The ids of the messages in the history, so the same messages arriving live are not
    /// sent twice.
    pub ids: HashSet<Uuid>,
}

impl Outbound {
    /// Its size on the wire, for the queue's bound.
    pub fn size(&self) -> usize {
        match self {
            Self::Frames(frames) => frames.bytes.len(),
            Self::Ping => 2,
            Self::Pong(payload) => payload.len() + 2,
            Self::Packet(packet) => packet.len(),
            Self::Batch(_) => 0,
        }
    }

    /// A JSON event that is not a chat message.
    pub fn event(frame: String) -> Self {
        Self::Frames(Arc::new(Frames::encode(&[Event {
            frame: frame.into(),
            message_id: None,
        }])))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(frame: &str, message_id: Option<Uuid>) -> Event {
        Event {
            frame: frame.into(),
            message_id,
        }
    }

    #[test]
    fn frames_leave_out_messages_already_sent() {
        let (a, b, elsewhere) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let events = [
            event(r#"{"n":1}"#, Some(a)),
            event(r#"{"n":2}"#, None),
            event(r#"{"n":3}"#, Some(b)),
        ];
        let frames = Frames::encode(&events);
        let mut nothing = HashSet::new();
        assert_eq!(frames.without(&mut nothing), frames.bytes);
        let mut skip: HashSet<Uuid> = [b, elsewhere].into();
        let kept = frames.without(&mut skip);
        assert_eq!(kept, Frames::encode(&events[..2]).bytes);
        assert_eq!(skip, HashSet::from([elsewhere]));
        let mut skip: HashSet<Uuid> = [a].into();
        assert_eq!(
            frames.without(&mut skip),
            Frames::encode(&events[1..]).bytes
        );
        // A short text frame: FIN + text opcode, its length, the JSON.
        assert_eq!(
            &Frames::encode(&events[..1]).bytes[..],
            b"\x81\x07{\"n\":1}"
        );
    }
}
