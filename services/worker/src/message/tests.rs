//! The seed's bare messages as `task` jobs; everything else not an envelope stays malformed.

use queue::Envelope;

use super::{bare_job_id, envelope_of};
use crate::{jobs::Job, outcome::JobError};

const SEED: &[u8] = br#"{"id":1,"task":"Tarea 1","timestamp":"2026-12-04T06:00:00.000Z"}"#;

#[test]
fn a_bare_seed_message_is_a_task_job() {
    let envelope = envelope_of(SEED, None, Some("req-1")).expect("a task job");
    assert_eq!(envelope.kind, "task");
    assert_eq!(envelope.attempt, 1);
    assert_eq!(envelope.request_id.as_deref(), Some("req-1"));
    assert_eq!(
        envelope.payload,
        serde_json::from_slice::<serde_json::Value>(SEED).expect("JSON")
    );
    match Job::parse(&envelope) {
        Ok(Job::Task(task)) => {
            assert_eq!(task.task, "Tarea 1");
            assert_eq!(task.id, Some(serde_json::json!(1)));
        }
        other => panic!("expected a task job, got {other:?}"),
    }
}

#[test]
fn a_bare_message_is_keyed_by_its_message_id_or_else_its_body() {
    let again = envelope_of(SEED, None, None).expect("a task job").id;
    assert_eq!(envelope_of(SEED, None, None).expect("a task job").id, again);
    let later = br#"{"id":1,"task":"Tarea 1","timestamp":"2026-12-04T06:00:01.000Z"}"#;
    assert_ne!(
        envelope_of(later, None, None).expect("a task job").id,
        again
    );

    let id = uuid::Uuid::new_v4();
    let keyed = envelope_of(SEED, Some(&id.to_string()), None).expect("a task job");
    assert_eq!(keyed.id, id);
    let named = bare_job_id(SEED, Some("seed-1"));
    assert_eq!(bare_job_id(later, Some("seed-1")), named);
    assert_ne!(named, bare_job_id(SEED, Some("seed-2")));
    assert_ne!(named, again);
}

#[test]
fn an_envelope_is_read_as_itself() {
    let envelope = Envelope::new("task", serde_json::json!({"task": "Tarea 9"}), Some("r"));
    let read = envelope_of(&envelope.to_body(), Some("another id"), None).expect("the envelope");
    assert_eq!(read, envelope);
    assert_eq!(read.task.as_deref(), Some("Tarea 9"));
}

#[test]
fn what_is_neither_stays_malformed() {
    for body in [
        &b"not json"[..],
        b"[1, 2]",
        b"\"Tarea 1\"",
        br#"{"id":1,"name":"Tarea 1"}"#,
        // An envelope with a broken field is not taken for a bare message.
        br#"{"id":"not a uuid","kind":"task","task":"Tarea 1","payload":{},"attempt":1}"#,
    ] {
        let error = envelope_of(body, None, None).expect_err("malformed");
        assert!(
            error.starts_with("malformed message (not a job envelope)"),
            "{error}"
        );
    }
    // A bare message whose `task` is not text is a task job with an invalid payload.
    let envelope = envelope_of(br#"{"id":1,"task":5}"#, None, None).expect("a task job");
    assert!(matches!(Job::parse(&envelope), Err(JobError::Malformed(_))));
}
