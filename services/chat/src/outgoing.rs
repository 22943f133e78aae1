//! What goes out to one client: the response body of its WebSocket.
//!
//! Room events skip actix-ws's per-message channel: the room's fan-out encodes a delivery once
//! ([`Frames`](crate::frames::Frames)) and every client's body hands those shared bytes to its
//! connection as they are, so a delivery to a client costs one queue slot and one socket
//! write, however many events it holds (docs/benchmarks.md, "What the chat-service measurements showed"). actix-ws handles the handshake, reads the client's frames, and
//! writes the close frame ([`actix_ws::Session::close`]); its own body is polled first here,
//! and the body ends when it does (after the close frame).

use std::{
    collections::HashSet,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use actix_http::ws::{OpCode, Parser};
use actix_web::body::{BodySize, BoxBody, MessageBody};
use bytes::{Bytes, BytesMut};
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::{frames::Outbound, queue::OutboundReceiver};

/// Deliveries (or Socket.IO packets) that fell behind go out together, up to about this many
/// bytes a chunk.
pub(crate) const MAX_CHUNK_BYTES: usize = 64 * 1024;

/// What a WebSocket response body yields.
pub(crate) type Chunk = Option<Result<Bytes, Box<dyn std::error::Error>>>;

/// actix-ws's own body (the `3probe`, the close frame), polled before anything else: its next
/// chunk, or its end, which ends the response; `None` while it has nothing.
pub(crate) fn poll_control(control: &mut BoxBody, cx: &mut Context<'_>) -> Option<Poll<Chunk>> {
    match Pin::new(control).poll_next(cx) {
        Poll::Pending => None,
        ready => Some(ready),
    }
}

/// What follows `welcome`: the `history` frame and the ids of the messages in it.
pub struct Preamble {
    /// The `history` event (JSON).
    pub frame: String,
    /// The ids in it, so the same messages arriving live are not sent twice.
    pub ids: HashSet<Uuid>,
}

/// The body of one client's WebSocket response: `welcome`, then `history`, then its queue.
pub struct Outgoing {
    /// actix-ws's body: the close frame, then the end.
    control: BoxBody,
    /// The encoded `welcome`, until it is written.
    welcome: Option<Bytes>,
    /// The history, until it is read; the queue waits for it.
    preamble: Option<oneshot::Receiver<Preamble>>,
    /// Messages in the history not yet seen in the queue.
    already_sent: HashSet<Uuid>,
    /// The client's outbound queue.
    queue: OutboundReceiver,
}

impl Outgoing {
    /// A body that writes `welcome` at once, the history once `preamble` gives it, then
    /// `queue`, and ends with `control` (actix-ws's body).
    pub fn new(
        control: BoxBody,
        welcome: &str,
        preamble: oneshot::Receiver<Preamble>,
        queue: OutboundReceiver,
    ) -> Self {
        Self {
            control,
            welcome: Some(frame(OpCode::Text, welcome.as_bytes())),
            preamble: Some(preamble),
            already_sent: HashSet::new(),
            queue,
        }
    }

    /// The bytes of one queued item.
    fn encode(&mut self, item: &Outbound) -> Bytes {
        match item {
            Outbound::Frames(frames) => frames.without(&mut self.already_sent),
            Outbound::Ping => frame(OpCode::Ping, b""),
            Outbound::Pong(payload) => frame(OpCode::Pong, payload),
            // Socket.IO sessions only: a native client is never sent either.
            Outbound::Packet(_) | Outbound::Batch(_) => Bytes::new(),
        }
    }
}

/// One unmasked (server) frame.
fn frame(opcode: OpCode, payload: &[u8]) -> Bytes {
    let mut frame = BytesMut::with_capacity(payload.len() + 10);
    Parser::write_message(&mut frame, payload, opcode, true, false);
    frame.freeze()
}

impl MessageBody for Outgoing {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> BodySize {
        BodySize::Stream
    }

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Chunk> {
        let this = self.get_mut();
        // Once actix-ws has written the close frame, nothing else goes out.
        if let Some(ready) = poll_control(&mut this.control, cx) {
            return ready;
        }
        if let Some(welcome) = this.welcome.take() {
            return Poll::Ready(Some(Ok(welcome)));
        }
        if let Some(preamble) = this.preamble.as_mut() {
            match Pin::new(preamble).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(preamble) => {
                    this.preamble = None;
                    // No preamble: the connection ended before it; the close frame follows.
                    if let Ok(preamble) = preamble {
                        this.already_sent = preamble.ids;
                        return Poll::Ready(Some(Ok(frame(
                            OpCode::Text,
                            preamble.frame.as_bytes(),
                        ))));
                    }
                }
            }
        }
        // Deliveries that fell behind go out in one write.
        let mut single: Option<Bytes> = None;
        let mut joined = BytesMut::new();
        while single.as_ref().map_or(joined.len(), Bytes::len) < MAX_CHUNK_BYTES {
            let Poll::Ready(Some(item)) = this.queue.poll_take(cx) else {
                break;
            };
            let bytes = this.encode(&item);
            if bytes.is_empty() {
                continue;
            }
            if let Some(previous) = single.take() {
                joined.extend_from_slice(&previous);
                joined.extend_from_slice(&bytes);
            } else if joined.is_empty() {
                single = Some(bytes);
            } else {
                joined.extend_from_slice(&bytes);
            }
        }
        match single {
            // One delivery (the usual case): the shared bytes as they are.
            Some(single) => Poll::Ready(Some(Ok(single))),
            None if !joined.is_empty() => Poll::Ready(Some(Ok(joined.freeze()))),
            None => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use actix_web::body::BodyStream;
    use bytestring::ByteString;

    use super::*;
    use crate::{
        frames::{Event, Frames},
        queue::OutboundQueue,
    };

    fn poll(body: &mut Outgoing) -> Poll<Option<Bytes>> {
        let mut context = Context::from_waker(std::task::Waker::noop());
        Pin::new(body)
            .poll_next(&mut context)
            .map(|chunk| chunk.map(|bytes| bytes.expect("no body error")))
    }

    fn delivery(events: &[(&str, Option<Uuid>)]) -> (Outbound, Bytes) {
        let events: Vec<Event> = events
            .iter()
            .map(|(frame, id)| Event {
                frame: ByteString::from(*frame),
                message_id: *id,
            })
            .collect();
        let frames = Frames::encode(&events);
        let bytes = frames.bytes.clone();
        (Outbound::Frames(Arc::new(frames)), bytes)
    }

    #[test]
    fn welcome_history_then_the_queue_and_the_close_frame_ends_it() {
        let (control_tx, mut control_rx) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
        let control = BoxBody::new(BodyStream::new(futures_util::stream::poll_fn(move |cx| {
            control_rx
                .poll_recv(cx)
                .map(|chunk| chunk.map(Ok::<_, std::convert::Infallible>))
        })));
        let (queue, receiver, _) = OutboundQueue::new(100);
        let (preamble_tx, preamble_rx) = oneshot::channel();
        let mut body = Outgoing::new(control, "{\"type\":\"welcome\"}", preamble_rx, receiver);

        assert_eq!(
            poll(&mut body),
            Poll::Ready(Some(frame(OpCode::Text, b"{\"type\":\"welcome\"}")))
        );
        // Live events wait for the history.
        let (in_history, live) = (Uuid::new_v4(), Uuid::new_v4());
        let (first, _) = delivery(&[("{\"m\":1}", Some(in_history)), ("{\"m\":2}", Some(live))]);
        queue.push(first).expect("room");
        assert_eq!(poll(&mut body), Poll::Pending);
        let preamble = Preamble {
            frame: "{\"type\":\"history\"}".to_owned(),
            ids: [in_history].into(),
        };
        assert!(preamble_tx.send(preamble).is_ok());
        assert_eq!(
            poll(&mut body),
            Poll::Ready(Some(frame(OpCode::Text, b"{\"type\":\"history\"}")))
        );
        // Two deliveries that waited go out as one chunk, without the message already sent.
        let (second, second_bytes) = delivery(&[("{\"m\":3}", None)]);
        queue.push(second).expect("room");
        let (_, live_only) = delivery(&[("{\"m\":2}", Some(live))]);
        let mut expected = BytesMut::new();
        expected.extend_from_slice(&live_only);
        expected.extend_from_slice(&second_bytes);
        assert_eq!(poll(&mut body), Poll::Ready(Some(expected.freeze())));
        assert_eq!(poll(&mut body), Poll::Pending);
        // The close frame pre-empts what is queued, and ends the body.
        queue.push(Outbound::Ping).expect("room");
        let close = frame(OpCode::Close, &1001u16.to_be_bytes());
        control_tx.send(close.clone()).expect("control open");
        assert_eq!(poll(&mut body), Poll::Ready(Some(close)));
        drop(control_tx);
        assert_eq!(poll(&mut body), Poll::Ready(None));
    }
}
