//! [`Envelope`]: a job as it travels, the JSON body of every message (docs/contracts.md,
//! "Messaging").

use serde::{Deserialize, Serialize};

use crate::MalformedMessage;

/// A job as it travels (docs/contracts.md): the body of every message, JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// The job's id, also the message's `message_id`; the consumer's idempotency key.
    pub id: uuid::Uuid,
    /// What to do (`task`, `thumbnail`).
    pub kind: String,
    /// The job as a reader of the seed's bare messages shows it (the seed's consumer logs a
    /// message's `task`): a `task` job's `payload.task`, the kind for other jobs. A label
    /// only: the worker reads `kind` and `payload`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// The kind's arguments.
    pub payload: serde_json::Value,
    /// 1 on the first delivery, one more on each retry.
    pub attempt: u32,
    /// The request that caused the job, when there was one.
    pub request_id: Option<String>,
    /// The W3C `traceparent` of the work that enqueued the job (its span is the parent of
    /// the job's): the consumer continues that trace. Absent from messages of producers that
    /// trace nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// When the job was first enqueued (RFC 3339).
    pub created_at: String,
}

impl Envelope {
    /// A new job (attempt 1, now).
    pub fn new(kind: &str, payload: serde_json::Value, request_id: Option<&str>) -> Self {
        let task = match payload.get("task").and_then(serde_json::Value::as_str) {
            Some(task) if kind == "task" => task.to_owned(),
            _ => kind.to_owned(),
        };
        Self {
            // Time-ordered: consumers' idempotency records (indexed by job id) then grow at
            // the end of their index instead of touching a random page per job.
            id: uuid::Uuid::now_v7(),
            kind: kind.to_owned(),
            task: Some(task),
            payload,
            attempt: 1,
            request_id: request_id.map(str::to_owned),
            traceparent: None,
            created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        }
    }

    /// The same job, continuing the trace whose `traceparent` is given (the producer's span).
    pub fn with_traceparent(self, traceparent: Option<String>) -> Self {
        Self {
            traceparent,
            ..self
        }
    }

    /// The same job, for its next attempt.
    pub fn next_attempt(&self) -> Self {
        Self {
            attempt: self.attempt.saturating_add(1),
            ..self.clone()
        }
    }

    /// The JSON body.
    pub fn to_body(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an envelope always serializes")
    }

    /// Reads a JSON body; anything else is [`MalformedMessage`] with the reason.
    pub fn from_body(body: &[u8]) -> Result<Self, MalformedMessage> {
        serde_json::from_slice(body).map_err(|error| MalformedMessage {
            reason: error.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_traceparent_travels_in_the_body_only_when_there_is_one() {
        let traced = Envelope::new("task", serde_json::json!({}), None).with_traceparent(Some(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned(),
        ));
        let read = Envelope::from_body(&traced.to_body()).expect("an envelope");
        assert_eq!(read.traceparent, traced.traceparent);
        assert_eq!(read.next_attempt().traceparent, traced.traceparent);
        let untraced = Envelope::new("task", serde_json::json!({}), None);
        let body: serde_json::Value = serde_json::from_slice(&untraced.to_body()).expect("JSON");
        assert!(body.get("traceparent").is_none(), "{body}");
        assert_eq!(
            Envelope::from_body(&untraced.to_body())
                .expect("read")
                .traceparent,
            None
        );
    }
}
