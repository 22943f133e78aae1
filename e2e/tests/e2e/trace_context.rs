//! One W3C trace through the platform (the `stack` binary, embedded queue): a client's
//! `traceparent` reaches the gateway, media-service, the job and the worker, and every log line
//! of that work names the trace; with `OTEL_EXPORTER_OTLP_ENDPOINT` set, the spans reach an
//! OTLP receiver started here with the client's trace id and each span's parent the span of the
//! step before it.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use e2e::Platform;
use opentelemetry_proto::tonic::{
    collector::trace::v1::ExportTraceServiceRequest, common::v1::any_value, trace::v1::Span,
};
use prost::Message;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::clients::png;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
/// A trace its caller did not sample (flags 00): no process records a span of it.
const UNSAMPLED_TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const UNSAMPLED: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Uploads a picture through the gateway under [`TRACEPARENT`] and waits for its thumbnail:
/// the worker has run the job by then.
async fn upload_and_wait_for_the_thumbnail(platform: &Platform) {
    let client = reqwest::Client::new();
    let session = platform.sign_up("Tracer").await;
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(png(64, 48))
            .file_name("traced.png")
            .mime_str("image/png")
            .expect("a MIME type"),
    );
    let uploaded = client
        .post(platform.url("/api/upload"))
        .bearer_auth(&session.access_token)
        .header("traceparent", TRACEPARENT)
        .multipart(form)
        .send()
        .await
        .expect("POST /api/upload");
    assert_eq!(uploaded.status(), 201);
    let uploaded: Value = uploaded.json().await.expect("upload JSON");
    let media_id = uploaded["file"]["id"].as_str().expect("an id").to_owned();
    let client = &client;
    let token = session.access_token.clone();
    testing::eventually("the thumbnail", Duration::from_secs(60), || {
        let url = platform.url(&format!("/api/media/{media_id}"));
        let token = token.clone();
        async move {
            let metadata: Value = client
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .expect("GET /api/media/{id}")
                .json()
                .await
                .expect("media JSON");
            metadata["thumbnail_url"].is_string()
        }
    })
    .await;
}

#[tokio::test]
async fn one_trace_runs_from_the_gateway_through_media_and_the_queue_to_the_worker() {
    let platform = Platform::stack().await.expect("the stack starts");
    upload_and_wait_for_the_thumbnail(&platform).await;

    let traced = |platform: &Platform| -> Vec<Value> {
        platform
            .log_lines()
            .into_iter()
            .filter(|line| line["trace_id"] == TRACE_ID)
            .collect()
    };
    testing::eventually(
        "the worker's lines of the job",
        Duration::from_secs(10),
        || {
            let done = traced(&platform)
                .iter()
                .any(|line| line["service"] == "worker" && line["msg"] == "thumbnail written");
            async move { done }
        },
    )
    .await;
    let lines = traced(&platform);
    let span_of = |service: &str, msg: &str| -> String {
        lines
            .iter()
            .find(|line| line["service"] == service && line["msg"] == msg)
            .and_then(|line| line["span_id"].as_str())
            .unwrap_or_else(|| panic!("no {service} {msg:?} line of the trace: {lines:#?}"))
            .to_owned()
    };
    let gateway = span_of("gateway", "request");
    let media = span_of("media", "request");
    let worker = span_of("worker", "thumbnail written");
    let spans = [CLIENT_SPAN, &gateway, &media, &worker];
    for (index, span) in spans.iter().enumerate() {
        assert_eq!(span.len(), 16, "{span}");
        assert!(
            !spans[..index].contains(span),
            "each step has a span of its own: {spans:?}"
        );
    }
    // Every line media-service and the worker wrote of this work names the trace and its span.
    for line in &lines {
        match line["service"].as_str() {
            Some("media") => assert_eq!(line["span_id"], media.as_str(), "{line}"),
            Some("worker") => assert_eq!(line["span_id"], worker.as_str(), "{line}"),
            _ => {}
        }
    }
    assert!(
        lines
            .iter()
            .any(|line| line["service"] == "media" && line["msg"] == "thumbnail job enqueued"),
        "{lines:#?}"
    );
    platform
        .stop(Duration::from_secs(10))
        .expect("the stack stops");
}

/// An OTLP/HTTP receiver: `POST /v1/traces` bodies decoded, each span with its `service.name`.
struct OtlpReceiver {
    /// `http://127.0.0.1:<port>`.
    url: String,
    /// (service name, span) of every span received.
    spans: Arc<Mutex<Vec<(String, Span)>>>,
}

impl OtlpReceiver {
    /// Serves on a thread and runtime of its own, so it answers while the test's thread waits
    /// (for the stack to stop, which exports its last spans).
    fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a listener");
        listener.set_nonblocking(true).expect("non-blocking");
        let url = format!("http://{}", listener.local_addr().expect("an address"));
        let spans = Arc::new(Mutex::new(Vec::new()));
        let kept = spans.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("the receiver's runtime");
            runtime.block_on(async move {
                let listener =
                    tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
                while let Ok((connection, _)) = listener.accept().await {
                    tokio::spawn(serve(connection, kept.clone()));
                }
            });
        });
        Self { url, spans }
    }

    fn spans(&self) -> Vec<(String, Span)> {
        self.spans.lock().expect("spans").clone()
    }
}

/// Answers one connection's requests (kept alive) with 200 and an empty
/// `ExportTraceServiceResponse`, keeping what each carried.
async fn serve(connection: tokio::net::TcpStream, spans: Arc<Mutex<Vec<(String, Span)>>>) {
    let mut connection = BufReader::new(connection);
    loop {
        let mut request_line = String::new();
        if connection.read_line(&mut request_line).await.unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0_usize;
        loop {
            let mut line = String::new();
            if connection.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().expect("a Content-Length");
            }
        }
        let mut body = vec![0_u8; length];
        connection
            .read_exact(&mut body)
            .await
            .expect("the request body");
        assert!(
            request_line.starts_with("POST /v1/traces "),
            "{request_line}"
        );
        let request = ExportTraceServiceRequest::decode(body.as_slice()).expect("protobuf");
        for resource_spans in request.resource_spans {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|resource| &resource.attributes)
                .find(|attribute| attribute.key == "service.name")
                .and_then(|attribute| attribute.value.as_ref()?.value.as_ref())
                .map(|value| match value {
                    any_value::Value::StringValue(name) => name.clone(),
                    other => format!("{other:?}"),
                })
                .unwrap_or_default();
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    spans.lock().expect("spans").push((service.clone(), span));
                }
            }
        }
        let answer = "HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\n\
                      content-length: 0\r\n\r\n";
        if connection
            .get_mut()
            .write_all(answer.as_bytes())
            .await
            .is_err()
        {
            return;
        }
    }
}

/// The span of `service` named `name` in the trace, once received.
fn find<'s>(spans: &'s [(String, Span)], service: &str, name: &str) -> Option<&'s Span> {
    spans
        .iter()
        .find(|(of, span)| of == service && span.name == name && hex(&span.trace_id) == TRACE_ID)
        .map(|(_, span)| span)
}

#[tokio::test]
async fn spans_reach_an_otlp_receiver_each_the_child_of_the_step_before() {
    let receiver = OtlpReceiver::start();
    let platform = Platform::stack_with(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url.clone()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".to_owned()),
    ])
    .await
    .expect("the stack starts");

    for traceparent in [UNSAMPLED, TRACEPARENT] {
        let answered = reqwest::Client::new()
            .post(platform.url("/graphql"))
            .header("traceparent", traceparent)
            .json(&serde_json::json!({"query": "{ users { id } }"}))
            .send()
            .await
            .expect("POST /graphql");
        assert_eq!(answered.status(), 200);
    }
    upload_and_wait_for_the_thumbnail(&platform).await;

    // (service, span name) of each step, in order, each the parent of the next.
    let graphql_chain = [
        ("gateway", "POST /graphql"),
        ("graphql", "POST /graphql"),
        ("graphql", "GET users"),
        ("users", "GET /api/users"),
    ];
    let upload_chain = [
        ("gateway", "POST /api/upload"),
        ("media", "POST /api/upload"),
        ("worker", "process thumbnail"),
    ];
    let all_there = |spans: &[(String, Span)]| {
        graphql_chain
            .iter()
            .chain(&upload_chain)
            .all(|(service, name)| find(spans, service, name).is_some())
    };
    let receiver = &receiver;
    testing::eventually(
        "every span of the trace at the receiver",
        Duration::from_secs(30),
        || {
            let there = all_there(&receiver.spans());
            async move { there }
        },
    )
    .await;
    let spans = receiver.spans();
    let shown = || {
        spans
            .iter()
            .map(|(service, span)| {
                format!(
                    "{service} {:?} {} {} <- {}",
                    span.name,
                    hex(&span.trace_id),
                    hex(&span.span_id),
                    hex(&span.parent_span_id)
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    for chain in [&graphql_chain[..], &upload_chain[..]] {
        let mut parent = CLIENT_SPAN.to_owned();
        for (service, name) in chain {
            let span = find(&spans, service, name).expect("found above");
            assert_eq!(
                hex(&span.parent_span_id),
                parent,
                "{service} {name}'s parent:\n{}",
                shown()
            );
            parent = hex(&span.span_id);
        }
    }
    let kind = |service: &str, name: &str| find(&spans, service, name).expect("found").kind;
    assert_eq!(kind("gateway", "POST /graphql"), 3, "client");
    assert_eq!(kind("graphql", "POST /graphql"), 2, "server");
    assert_eq!(kind("worker", "process thumbnail"), 5, "consumer");
    platform
        .stop(Duration::from_secs(10))
        .expect("the stack stops");
    // Stopped, every process has exported what it recorded: nothing of the unsampled trace.
    let unsampled: Vec<_> = receiver
        .spans()
        .into_iter()
        .filter(|(_, span)| hex(&span.trace_id) == UNSAMPLED_TRACE_ID)
        .map(|(service, span)| format!("{service} {}", span.name))
        .collect();
    assert!(
        unsampled.is_empty(),
        "spans of an unsampled trace: {unsampled:?}"
    );
}
