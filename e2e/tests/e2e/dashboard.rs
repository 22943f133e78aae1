//! The Grafana dashboard (`deploy/grafana/platform.json`) against a running platform: it parses,
//! every panel queries something, every series it names is one the platform exports (read
//! from each process's `/metrics` after the journey's traffic) by the service its selector
//! names, every label it groups by is one that series has, and no process declares an
//! OpenMetrics family twice or a label twice in a series.

use std::collections::{BTreeMap, BTreeSet};

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

/// The series a process exports, each with the label names its samples carry: its families
/// (from `# TYPE`), a histogram's `_bucket`, `_sum` and `_count`, and every sample's name.
fn exported(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut series: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut words = rest.split_whitespace();
            if let (Some(name), Some(kind)) = (words.next(), words.next()) {
                series.entry(name.to_owned()).or_default();
                if kind == "histogram" || kind == "summary" {
                    for suffix in ["_bucket", "_sum", "_count"] {
                        series.entry(format!("{name}{suffix}")).or_default();
                    }
                }
            }
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        series
            .entry(line[..name_end].to_owned())
            .or_default()
            .extend(testing::label_names(line));
    }
    series
}

/// The labels of every `by (…)` of `expr`.
fn grouping_labels(expr: &str) -> Vec<String> {
    let mut labels = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("by (") {
        let inside = &rest[at + 4..];
        let close = inside.find(')').unwrap_or(inside.len());
        labels.extend(
            inside[..close]
                .split(',')
                .map(|label| label.trim().to_owned())
                .filter(|label| !label.is_empty()),
        );
        rest = &inside[close..];
    }
    labels
}

/// The service a selector of `metric` in `expr` names (`service="worker"`), if any.
fn selected_service<'e>(expr: &'e str, metric: &str) -> Option<&'e str> {
    let start = expr.find(&format!("{metric}{{"))? + metric.len() + 1;
    let selector = &expr[start..start + expr[start..].find('}')?];
    let value = selector.split("service=\"").nth(1)?;
    value.split('"').next()
}

/// Checks the dashboard against every process of `services` (name → base URL).
pub async fn assert_dashboard_matches(services: &BTreeMap<String, String>) {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/grafana/platform.json");
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("the dashboard"))
            .expect("the dashboard is JSON");
    assert_eq!(dashboard["uid"], "platform-overview");
    let mut by_service = BTreeMap::new();
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
        by_service.insert(service.clone(), exported(&text));
    }
    let mut anywhere: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for series in by_service.values() {
        for (name, labels) in series {
            anywhere
                .entry(name.clone())
                .or_default()
                .extend(labels.iter().cloned());
        }
    }
    let panels = dashboard["panels"].as_array().expect("panels");
    let mut queried = 0;
    for panel in panels.iter().filter(|panel| panel["type"] != "row") {
        let title = &panel["title"];
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title} queries nothing");
        for target in targets {
            let expr = target["expr"].as_str().expect("an expr");
            let metrics = selected_metrics(expr);
            assert!(!metrics.is_empty(), "{title}: no metric in {expr}");
            for metric in metrics {
                let exported_by = match selected_service(expr, &metric) {
                    Some(service) => by_service
                        .get(service)
                        .unwrap_or_else(|| panic!("{title}: no service {service} ({expr})")),
                    None => &anywhere,
                };
                let labels = exported_by.get(&metric).unwrap_or_else(|| {
                    panic!("{title}: {metric} is not exported where the panel reads it ({expr})")
                });
                for label in grouping_labels(expr) {
                    assert!(
                        labels.contains(&label),
                        "{title}: {metric} has no label {label} to group by ({expr}; it has {labels:?})"
                    );
                }
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
    let text = "# TYPE h histogram\nh_bucket{le=\"1\",route=\"/a/{id},x\",kind=\"q\\\"\"} 1\n\
                # TYPE c_total counter\nc_total 2\n";
    let series = exported(text);
    assert_eq!(
        series.keys().collect::<Vec<_>>(),
        ["c_total", "h", "h_bucket", "h_count", "h_sum"]
    );
    assert_eq!(
        series["h_bucket"].iter().collect::<Vec<_>>(),
        ["kind", "le", "route"]
    );
    assert_eq!(
        grouping_labels("sum by (service, le) (rate(x{a=\"1\"}[5m])) / sum by (route) (y{})"),
        ["service", "le", "route"]
    );
    assert_eq!(
        selected_service(
            r#"sum(rate(w_total{service="worker", kind="x"}[1m]))"#,
            "w_total"
        ),
        Some("worker")
    );
}
