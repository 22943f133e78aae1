//! The operations one WebSocket runs, and the refusal of one too many: a client may run at most
//! [`crate::Limits::max_subscriptions`] operations at once on a connection (subscriptions, and
//! queries or mutations sent over it until they complete), each with a query of at most
//! [`crate::Limits::max_query_bytes`]. A refused `subscribe` (`start` on `graphql-ws`) never
//! reaches the executor; its client gets that protocol's `error` message for the operation's
//! id, with `extensions.code` `TOO_MANY_SUBSCRIPTIONS` or `QUERY_TOO_LARGE`, and the connection
//! and its other operations go on.

use std::collections::HashSet;

use async_graphql::http::WebSocketProtocols;
use serde::Deserialize;
use serde_json::json;

use crate::schema::errors::codes;

/// What to do with a client's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// Hand it to the executor.
    Forward,
    /// Answer with this text frame instead.
    Refuse(String),
}

/// The fields of a client message this module reads.
#[derive(Deserialize)]
struct ClientMessage {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    payload: Option<Payload>,
}

#[derive(Deserialize)]
struct Payload {
    #[serde(default)]
    query: Option<String>,
}

/// The `complete` message the executor sends when an operation ends.
#[derive(Deserialize)]
struct Completed {
    id: String,
}

/// The operations running on one WebSocket.
#[derive(Debug)]
pub struct SocketOperations {
    /// The protocol spoken (the shape of an `error` message).
    protocol: WebSocketProtocols,
    /// The ids of the operations running.
    running: HashSet<String>,
    /// How many may run at once.
    max_running: usize,
    /// The largest query, in bytes.
    max_query_bytes: usize,
}

impl SocketOperations {
    /// None running yet.
    pub fn new(protocol: WebSocketProtocols, max_running: usize, max_query_bytes: usize) -> Self {
        Self {
            protocol,
            running: HashSet::new(),
            max_running,
            max_query_bytes,
        }
    }

    /// What to do with a client's message: a new operation past the limits is refused; the
    /// rest (malformed messages too: the executor answers those) go on.
    pub fn inbound(&mut self, frame: &[u8]) -> Inbound {
        // Only the messages that can start or stop an operation need reading.
        let Ok(message) = serde_json::from_slice::<ClientMessage>(frame) else {
            return Inbound::Forward;
        };
        let Some(id) = message.id else {
            return Inbound::Forward;
        };
        match message.kind.as_str() {
            "subscribe" | "start" => {
                let query_bytes = message
                    .payload
                    .and_then(|payload| payload.query)
                    .map_or(0, |query| query.len());
                if query_bytes > self.max_query_bytes {
                    return Inbound::Refuse(self.error(
                        &id,
                        codes::QUERY_TOO_LARGE,
                        &format!(
                            "the query document is {query_bytes} bytes; the limit is {}",
                            self.max_query_bytes
                        ),
                    ));
                }
                if !self.running.contains(&id) && self.running.len() >= self.max_running {
                    return Inbound::Refuse(self.error(
                        &id,
                        codes::TOO_MANY_SUBSCRIPTIONS,
                        &format!(
                            "this connection runs {} operations, the most it may: complete one first",
                            self.max_running
                        ),
                    ));
                }
                self.running.insert(id);
                Inbound::Forward
            }
            "complete" | "stop" => {
                self.running.remove(&id);
                Inbound::Forward
            }
            _ => Inbound::Forward,
        }
    }

    /// Notes an operation the executor completed (its `complete` message).
    pub fn outbound(&mut self, text: &str) {
        if !text.starts_with(r#"{"type":"complete""#) {
            return;
        }
        if let Ok(completed) = serde_json::from_str::<Completed>(text) {
            self.running.remove(&completed.id);
        }
    }

    /// The protocol's `error` message for operation `id`.
    fn error(&self, id: &str, code: &str, message: &str) -> String {
        let error = json!({"message": message, "extensions": {"code": code}});
        let payload = match self.protocol {
            // graphql-transport-ws: a list of GraphQL errors.
            WebSocketProtocols::GraphQLWS => json!([error]),
            // subscriptions-transport-ws (`graphql-ws`): one error object.
            WebSocketProtocols::SubscriptionsTransportWS => error,
        };
        json!({"type": "error", "id": id, "payload": payload}).to_string()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn subscribe(kind: &str, id: &str) -> Vec<u8> {
        json!({"type": kind, "id": id, "payload": {"query": "subscription { postCreated { id } }"}})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn operations_past_the_limit_are_refused_until_one_completes() {
        let mut operations = SocketOperations::new(WebSocketProtocols::GraphQLWS, 2, 1000);
        assert_eq!(
            operations.inbound(&subscribe("subscribe", "1")),
            Inbound::Forward
        );
        assert_eq!(
            operations.inbound(&subscribe("subscribe", "2")),
            Inbound::Forward
        );
        // The same id again replaces its operation: not one more.
        assert_eq!(
            operations.inbound(&subscribe("subscribe", "2")),
            Inbound::Forward
        );
        let Inbound::Refuse(frame) = operations.inbound(&subscribe("subscribe", "3")) else {
            panic!("a third operation is refused");
        };
        let frame: Value = serde_json::from_str(&frame).expect("JSON");
        assert_eq!(frame["type"], "error");
        assert_eq!(frame["id"], "3");
        assert_eq!(
            frame["payload"][0]["extensions"]["code"],
            "TOO_MANY_SUBSCRIPTIONS"
        );
        // The client completes one; the executor completes another.
        operations.inbound(br#"{"type":"complete","id":"1"}"#);
        operations.outbound(r#"{"type":"complete","id":"2"}"#);
        assert_eq!(operations.running.len(), 0);
        assert_eq!(
            operations.inbound(&subscribe("subscribe", "3")),
            Inbound::Forward
        );
    }

    #[test]
    fn the_legacy_protocol_gets_its_own_error_shape() {
        let mut operations =
            SocketOperations::new(WebSocketProtocols::SubscriptionsTransportWS, 1, 1000);
        assert_eq!(
            operations.inbound(&subscribe("start", "a")),
            Inbound::Forward
        );
        let Inbound::Refuse(frame) = operations.inbound(&subscribe("start", "b")) else {
            panic!("refused");
        };
        let frame: Value = serde_json::from_str(&frame).expect("JSON");
        assert_eq!(
            frame["payload"]["extensions"]["code"],
            "TOO_MANY_SUBSCRIPTIONS"
        );
        operations.inbound(br#"{"type":"stop","id":"a"}"#);
        assert_eq!(
            operations.inbound(&subscribe("start", "b")),
            Inbound::Forward
        );
    }

    #[test]
    fn large_queries_and_other_messages() {
        let mut operations = SocketOperations::new(WebSocketProtocols::GraphQLWS, 5, 10);
        let Inbound::Refuse(frame) = operations.inbound(&subscribe("subscribe", "1")) else {
            panic!("refused");
        };
        assert!(frame.contains("QUERY_TOO_LARGE"), "{frame}");
        assert_eq!(operations.running.len(), 0);
        for other in [
            &br#"{"type":"connection_init"}"#[..],
            br#"{"type":"ping"}"#,
            b"not json",
        ] {
            assert_eq!(operations.inbound(other), Inbound::Forward);
        }
    }
}
