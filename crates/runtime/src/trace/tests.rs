//! The W3C trace-context spec's examples and its invalid cases.

use super::*;

const SPEC_EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn incoming(traceparent: &str) -> Incoming {
    TraceContext::accept_or_start(Some(traceparent.as_bytes()), Some(b"congo=t61rcWkgMzE"))
}

#[test]
fn the_spec_example_is_continued_with_a_span_of_its_own() {
    let parsed = incoming(SPEC_EXAMPLE);
    assert_eq!(
        parsed.context.trace_id.to_string(),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_eq!(
        parsed.parent.map(|id| id.to_string()).as_deref(),
        Some("00f067aa0ba902b7")
    );
    assert_ne!(
        parsed.context.span_id,
        SpanId([0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7])
    );
    assert!(parsed.context.sampled());
    assert_eq!(
        parsed.context.tracestate.as_deref(),
        Some("congo=t61rcWkgMzE")
    );
    let forwarded = parsed.context.traceparent();
    assert_eq!(
        forwarded.as_str(),
        format!(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-{}-01",
            parsed.context.span_id
        )
    );
}

#[test]
fn an_unsampled_trace_stays_unsampled() {
    let parsed = incoming("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
    assert!(parsed.parent.is_some());
    assert!(!parsed.context.sampled());
    assert!(parsed.context.traceparent().as_str().ends_with("-00"));
}

#[test]
fn a_later_version_is_read_for_its_first_four_parts() {
    let parsed = parse_traceparent(
        b"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-holds",
    )
    .expect("a later version with more parts parses");
    assert_eq!(parsed.flags, 1);
    assert!(
        parse_traceparent(b"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").is_some()
    );
    // A later version's fifth part must be separated by a dash.
    assert!(
        parse_traceparent(b"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01.x").is_none()
    );
}

#[test]
fn invalid_traceparents_start_a_trace_and_drop_the_tracestate() {
    let invalid = [
        // Version ff is forbidden.
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        // All-zero ids.
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        // Upper-case hex.
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
        "0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        // Bad lengths.
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e47366-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        // Wrong separators, non-hex digits, whitespace.
        "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
        "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",
        " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "",
    ];
    for value in invalid {
        let parsed = incoming(value);
        assert_eq!(parsed.parent, None, "{value:?} is invalid");
        assert_ne!(
            parsed.context.trace_id.to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736",
            "{value:?} starts a trace"
        );
        assert_eq!(
            parsed.context.tracestate, None,
            "{value:?} drops tracestate"
        );
        assert!(parsed.context.sampled());
    }
}

#[test]
fn an_absent_traceparent_starts_a_trace() {
    let started = TraceContext::accept_or_start(None, Some(b"congo=t61rcWkgMzE"));
    assert_eq!(started.parent, None);
    assert_eq!(started.context.tracestate, None);
    let text = started.context.traceparent();
    let parsed = parse_traceparent(text.as_bytes()).expect("what we write parses");
    assert_eq!(parsed.trace_id, started.context.trace_id);
    assert_eq!(parsed.parent_id, started.context.span_id);
    assert_ne!(TraceContext::start().trace_id, started.context.trace_id);
}

#[test]
fn a_child_keeps_the_trace_and_takes_a_span_of_its_own() {
    let parent = incoming(SPEC_EXAMPLE).context;
    let child = parent.child();
    assert_eq!(child.trace_id, parent.trace_id);
    assert_ne!(child.span_id, parent.span_id);
    assert_eq!(child.flags, parent.flags);
    assert_eq!(child.tracestate, parent.tracestate);
}

#[test]
fn unknown_flags_are_not_passed_on() {
    let parsed = incoming("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff");
    assert_eq!(parsed.context.flags, 0x01);
}

#[test]
fn a_tracestate_too_long_or_not_printable_is_dropped() {
    let long = format!("a={}", "x".repeat(600));
    for state in [long.as_bytes(), b"a=1\nb=2", b""] {
        let parsed = TraceContext::accept_or_start(Some(SPEC_EXAMPLE.as_bytes()), Some(state));
        assert!(parsed.parent.is_some());
        assert_eq!(parsed.context.tracestate, None);
    }
    let kept = TraceContext::accept_or_start(Some(SPEC_EXAMPLE.as_bytes()), Some(b"a=1, b=2"));
    assert_eq!(kept.context.tracestate.as_deref(), Some("a=1, b=2"));
}

#[test]
fn the_ids_are_log_fields() {
    let context = incoming(SPEC_EXAMPLE).context;
    let buffer = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Shared {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("buffer lock").extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    use slog::Drain;
    let drain = std::sync::Mutex::new(crate::json_drain(Shared(buffer.clone()))).fuse();
    let logger = slog::Logger::root(drain, slog::o!());
    slog::info!(logger, "job"; &context);
    let line: serde_json::Value =
        serde_json::from_slice(&buffer.lock().expect("buffer lock")).expect("one JSON line");
    assert_eq!(line["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(line["span_id"], context.span_id.to_string());
}
