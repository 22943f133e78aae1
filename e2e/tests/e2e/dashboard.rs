//! The Grafana dashboard (`deploy/grafana/platform.json`) against a running platform: it parses,
//! every panel queries something, and every series it names is one the platform exports (read
//! from each process's `/metrics` after the journey's traffic), with no two OpenMetrics
//! families of one name in any process.

use std::collections::BTreeSet;

use serde_json::Value;

/// The metric names a PromQL expression selects: every name followed by a `{…}` selector (the
/// dashboard writes each metric with one, so functions and `by (…)` labels are never taken).
fn selected_metrics(expr: &str) -> Vec<String> {
    let bytes = expr.as_bytes();
    let mut names = Vec::new();
    for (index, byte) in bytes.iter().enumerate() {
        if *byte != b'{' {
            continue;
        }
        let start = bytes[..index]
            .iter()
            .rposition(|b| !(b.is_ascii_alphanumeric() || *b == b'_' || *b == b':'))
            .map_or(0, |position| position + 1);
        if start < index {
            names.push(expr[start..index].to_owned());
        }
    }
    names
}

/// The series names a process exports: its families, and a histogram's `_bucket`, `_sum` and
/// `_count` series.
fn exported(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut words = rest.split_whitespace();
            if let (Some(name), Some(kind)) = (words.next(), words.next()) {
                names.insert(name.to_owned());
                if kind == "histogram" || kind == "summary" {
                    for suffix in ["_bucket", "_sum", "_count"] {
                        names.insert(format!("{name}{suffix}"));
                    }
                }
            }
        }
    }
    names
}

/// Checks the dashboard against every process of `services` (name → base URL).
pub async fn assert_dashboard_matches(services: &std::collections::BTreeMap<String, String>) {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/grafana/platform.json");
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("the dashboard"))
            .expect("the dashboard is JSON");
    assert_eq!(dashboard["uid"], "platform-overview");
    let mut available = BTreeSet::new();
    for (service, base) in services {
        let text = reqwest::get(format!("{base}/metrics"))
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics text");
        testing::assert_distinct_metric_families(&text);
        assert!(
            text.contains(&format!("service=\"{service}\"")),
            "{service}'s series carry its service label"
        );
        available.extend(exported(&text));
    }
    let panels = dashboard["panels"].as_array().expect("panels");
    let mut queried = 0;
    for panel in panels.iter().filter(|panel| panel["type"] != "row") {
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{} queries nothing", panel["title"]);
        for target in targets {
            let expr = target["expr"].as_str().expect("an expr");
            let metrics = selected_metrics(expr);
            assert!(
                !metrics.is_empty(),
                "{}: no metric in {expr}",
                panel["title"]
            );
            for metric in metrics {
                assert!(
                    available.contains(&metric),
                    "{}: {metric} is not exported by any process ({expr})",
                    panel["title"]
                );
                queried += 1;
            }
        }
    }
    assert!(
        queried >= 20,
        "the dashboard reads the platform's series ({queried})"
    );
}

#[test]
fn selectors_name_their_metrics_and_nothing_else() {
    assert_eq!(
        selected_metrics(
            r#"histogram_quantile(0.99, sum by (service, le) (rate(http_request_duration_seconds_bucket{service=~"$service"}[5m])))"#
        ),
        ["http_request_duration_seconds_bucket"]
    );
    assert_eq!(
        selected_metrics(r#"sum(a_total{x="1"}) / sum(b{y="2"})"#),
        ["a_total", "b"]
    );
    let text = "# TYPE h histogram\nh_bucket{le=\"1\"} 1\n# TYPE c_total counter\nc_total 2\n";
    assert_eq!(
        exported(text).into_iter().collect::<Vec<_>>(),
        ["c_total", "h", "h_bucket", "h_count", "h_sum"]
    );
}
