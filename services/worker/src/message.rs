//! What a delivered body is as a job: a job envelope (docs/contracts.md, "Messaging"), or a
//! bare task message, read as a `task` job.
//!
//! A bare task message is `{"id": 1, "task": "Tarea 1", "timestamp": "…"}` on `tasks_queue`,
//! persistent, without envelope or `message_id`. A JSON object with a `task` field and no
//! `kind` field is such a message: it becomes a `task` job (attempt 1) whose payload is the
//! object itself, so [`crate::jobs::Job::parse`] validates it as every `task`
//! payload is (a `task` that is not a string is malformed, dead-lettered). Anything else that is
//! not an envelope (not JSON, no `task`, an envelope with a bad field) stays malformed.
//!
//! Its job id, the worker's idempotency key (`task_runs`, `processed_jobs`), is
//! [`bare_job_id`]: the AMQP `message_id` when the producer set one (the id itself when it is a
//! UUID), otherwise the SHA-256 of the body. The same message delivered again (a redelivery, a
//! republished copy counting deliveries) has the same bytes, so it is recorded once; two runs
//! of a producer of bare messages differ by their `timestamp`, so each is new work. Two
//! publishes of byte-identical bodies without `message_id` are one job (the producer that means
//! two jobs sets `message_id`). A retry publishes the job as an envelope carrying that id.

use queue::{Delivery, Envelope};
use sha2::{Digest, Sha256};

/// The job a delivery carries, or why it is malformed.
pub fn job_envelope(delivery: &Delivery) -> Result<Envelope, String> {
    envelope_of(
        &delivery.body,
        delivery.message_id.as_deref(),
        delivery.request_id.as_deref(),
    )
}

/// The job `body` carries (see the module documentation), or why it is malformed.
pub fn envelope_of(
    body: &[u8],
    message_id: Option<&str>,
    request_id: Option<&str>,
) -> Result<Envelope, String> {
    let not_envelope = match serde_json::from_slice::<Envelope>(body) {
        Ok(envelope) => return Ok(envelope),
        Err(error) => error,
    };
    let malformed = || format!("malformed message (not a job envelope): {not_envelope}");
    let Ok(serde_json::Value::Object(object)) = serde_json::from_slice(body) else {
        return Err(malformed());
    };
    if object.contains_key("kind") || !object.contains_key("task") {
        return Err(malformed());
    }
    let mut envelope = Envelope::new("task", serde_json::Value::Object(object), request_id);
    envelope.id = bare_job_id(body, message_id);
    Ok(envelope)
}

/// The idempotency key of a bare message: its `message_id` (as a UUID, or a name-based UUID of
/// it), otherwise a UUID made of the SHA-256 of the body.
pub fn bare_job_id(body: &[u8], message_id: Option<&str>) -> uuid::Uuid {
    if let Some(id) = message_id {
        if let Ok(id) = uuid::Uuid::parse_str(id) {
            return id;
        }
        return hashed(b"message_id:", id.as_bytes());
    }
    hashed(b"body:", body)
}

/// A version-8 UUID of the first 16 bytes of SHA-256(`domain` ‖ `bytes`).
fn hashed(domain: &[u8], bytes: &[u8]) -> uuid::Uuid {
    let digest = Sha256::new()
        .chain_update(domain)
        .chain_update(bytes)
        .finalize();
    let mut first = [0_u8; 16];
    first.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(first).into_uuid()
}

#[cfg(test)]
mod tests;
