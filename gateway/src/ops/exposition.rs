//! The Prometheus text exposition format (version 0.0.4), read leniently: [`samples`] yields
//! each sample line it can read and skips every other line (comments, `# TYPE`, garbage), and
//! [`Reading::of`] keeps the figures the operations page charts. Nothing in the input makes it
//! panic, and what it keeps is bounded whatever the input ([`MAX_BUCKETS`]).
//!
//! Not `prometheus-parse`: it splits label pairs on `,` and `=` and ends them at the first `}`,
//! which breaks on the services' route labels (`route="/api/users/{id}"`).

/// One sample: a series' name, its labels and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample<'a> {
    /// The metric's name (`http_requests_total`, `…_bucket`).
    pub name: &'a str,
    /// The label pairs in their order, values unescaped.
    pub labels: Vec<(&'a str, String)>,
    /// The value (`+Inf`, `-Inf` and `NaN` included).
    pub value: f64,
}

impl Sample<'_> {
    /// The value of label `name`, if the sample has it.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(label, _)| *label == name)
            .map(|(_, value)| value.as_str())
    }
}

/// Every sample line of `text` that parses, in order; other lines are skipped.
pub fn samples(text: &str) -> impl Iterator<Item = Sample<'_>> {
    text.lines().filter_map(sample)
}

/// The sample of one line, or `None` for a comment, a blank or a malformed line.
fn sample(line: &str) -> Option<Sample<'_>> {
    let line = line.trim_start();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line
        .char_indices()
        .find(|(index, c)| !is_name_char(*c, *index == 0))
        .map_or(line.len(), |(index, _)| index);
    if name_end == 0 {
        return None;
    }
    let (name, mut rest) = line.split_at(name_end);
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        rest = read_labels(after, &mut labels)?;
    }
    // The value, then an optional timestamp (ignored): at least one blank before the value.
    if !rest.starts_with([' ', '\t']) {
        return None;
    }
    let value = rest.split_ascii_whitespace().next()?;
    Some(Sample {
        name,
        labels,
        value: parse_value(value)?,
    })
}

/// Whether `c` may be in a metric or label name (`[a-zA-Z_:][a-zA-Z0-9_:]*`).
fn is_name_char(c: char, first: bool) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':' || (!first && c.is_ascii_digit())
}

/// Reads `name="value",…}` into `labels`; the text after the `}`, or `None` if malformed.
fn read_labels<'a>(mut text: &'a str, labels: &mut Vec<(&'a str, String)>) -> Option<&'a str> {
    loop {
        text = text.trim_start();
        if let Some(rest) = text.strip_prefix('}') {
            return Some(rest);
        }
        let name_end = text
            .char_indices()
            .find(|(index, c)| !is_name_char(*c, *index == 0))
            .map_or(text.len(), |(index, _)| index);
        if name_end == 0 {
            return None;
        }
        let (name, rest) = text.split_at(name_end);
        let rest = rest.trim_start().strip_prefix('=')?.trim_start();
        let rest = rest.strip_prefix('"')?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next()? {
                (index, '"') => break index,
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                (_, c) => value.push(c),
            }
        };
        labels.push((name, value));
        text = rest[end + 1..].trim_start();
        if let Some(rest) = text.strip_prefix(',') {
            text = rest;
        } else if !text.starts_with('}') {
            return None;
        }
    }
}

/// A sample value: a float, `+Inf`, `-Inf` or `NaN` (Go's spellings).
fn parse_value(text: &str) -> Option<f64> {
    match text {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => text.parse().ok().filter(|value: &f64| value.is_finite()),
    }
}

/// The services' probe routes, left out of the request figures: the collector's own scrapes
/// (and an orchestrator's probes) are not the traffic the page charts.
pub const PROBE_ROUTES: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// At most this many distinct bucket bounds are kept from one scrape (the services have 15).
pub const MAX_BUCKETS: usize = 64;

/// What the operations page keeps of one scrape of an instance's `/metrics`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reading {
    /// The `service` label of its series (every service's registry sets it).
    pub service: Option<String>,
    /// `http_requests_total`, summed over every label set but the [`PROBE_ROUTES`].
    pub requests: f64,
    /// The part of [`Reading::requests`] with a `5xx` status.
    pub errors: f64,
    /// `http_request_duration_seconds_bucket` summed over every label set but the
    /// [`PROBE_ROUTES`]: `(le, cumulative count)`, sorted by `le`, at most [`MAX_BUCKETS`].
    pub buckets: Vec<(f64, f64)>,
    /// `process_resident_memory_bytes`, when reported.
    pub resident_memory: Option<f64>,
}

impl Reading {
    /// The reading of a `/metrics` body; series it does not know, and lines it cannot read, are
    /// ignored. Negative and non-finite counts are ignored too (a counter is neither).
    pub fn of(text: &str) -> Self {
        Self::of_excluding(text, &PROBE_ROUTES)
    }

    /// [`Reading::of`] leaving out the requests of the routes `excluded` (rather than the
    /// probes').
    pub fn of_excluding(text: &str, excluded: &[&str]) -> Self {
        let mut reading = Self::default();
        for sample in samples(text) {
            if reading.service.is_none()
                && let Some(service) = sample.label("service")
            {
                reading.service = Some(service.chars().take(64).collect());
            }
            let count = sample.value;
            let counted = count.is_finite()
                && count >= 0.0
                && !sample
                    .label("route")
                    .is_some_and(|route| excluded.contains(&route));
            match sample.name {
                "http_requests_total" if counted => {
                    reading.requests += count;
                    if sample
                        .label("status")
                        .is_some_and(|status| status.len() == 3 && status.starts_with('5'))
                    {
                        reading.errors += count;
                    }
                }
                "http_request_duration_seconds_bucket" if counted => {
                    let Some(le) = sample.label("le").and_then(parse_value) else {
                        continue;
                    };
                    if le.is_nan() {
                        continue;
                    }
                    match reading
                        .buckets
                        .binary_search_by(|(bound, _)| bound.total_cmp(&le))
                    {
                        Ok(index) => reading.buckets[index].1 += count,
                        Err(index) if reading.buckets.len() < MAX_BUCKETS => {
                            reading.buckets.insert(index, (le, count));
                        }
                        Err(_) => {}
                    }
                }
                "process_resident_memory_bytes" if counted => {
                    reading.resident_memory = Some(count);
                }
                _ => {}
            }
        }
        reading
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scrape of a service, as `prometheus`' text encoder writes it.
    pub const SCRAPE: &str = r#"# HELP http_requests_total HTTP requests answered, by route and status
# TYPE http_requests_total counter
http_requests_total{method="GET",route="/api/users/{id}",service="users",status="200"} 90
http_requests_total{method="GET",route="/api/users/{id}",service="users",status="404"} 5
http_requests_total{method="POST",route="/api/auth/login",service="users",status="503"} 5
http_requests_total{method="GET",route="/metrics",service="users",status="200"} 40
http_requests_total{method="GET",route="/readyz",service="users",status="503"} 40
# HELP http_request_duration_seconds Time to answer HTTP requests
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{method="GET",route="/api/users/{id}",service="users",le="0.1"} 80
http_request_duration_seconds_bucket{method="GET",route="/api/users/{id}",service="users",le="1"} 95
http_request_duration_seconds_bucket{method="GET",route="/api/users/{id}",service="users",le="+Inf"} 95
http_request_duration_seconds_sum{method="GET",route="/api/users/{id}",service="users"} 3.5
http_request_duration_seconds_count{method="GET",route="/api/users/{id}",service="users"} 95
http_request_duration_seconds_bucket{method="POST",route="/api/auth/login",service="users",le="0.1"} 0
http_request_duration_seconds_bucket{method="POST",route="/api/auth/login",service="users",le="1"} 5
http_request_duration_seconds_bucket{method="POST",route="/api/auth/login",service="users",le="+Inf"} 5
http_request_duration_seconds_bucket{method="GET",route="/metrics",service="users",le="0.1"} 40
http_request_duration_seconds_bucket{method="GET",route="/metrics",service="users",le="+Inf"} 40
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes{service="users"} 1.2345e7
"#;

    #[test]
    fn a_services_scrape_is_read_without_its_probes() {
        let reading = Reading::of(SCRAPE);
        assert_eq!(reading.service.as_deref(), Some("users"));
        assert_eq!((reading.requests, reading.errors), (100.0, 5.0));
        assert_eq!(
            reading.buckets,
            [(0.1, 80.0), (1.0, 100.0), (f64::INFINITY, 100.0)]
        );
        assert_eq!(reading.resident_memory, Some(12_345_000.0));
    }

    #[test]
    fn labels_keep_braces_commas_and_escapes() {
        let sample =
            sample(r#"m{a="x{y},z=1",b="q\"uo\\te\nd" , } 7 1700000000000"#).expect("a sample");
        assert_eq!(sample.name, "m");
        assert_eq!(sample.label("a"), Some("x{y},z=1"));
        assert_eq!(sample.label("b"), Some("q\"uo\\te\nd"));
        assert_eq!(sample.value, 7.0);
        assert_eq!(sample_value("m +Inf"), Some(f64::INFINITY), "Go's infinity");
        assert!(sample_value("m NaN").is_some_and(f64::is_nan));
        assert_eq!(sample_value("m_total -3e2"), Some(-300.0));
    }

    fn sample_value(line: &str) -> Option<f64> {
        sample(line).map(|sample| sample.value)
    }

    #[test]
    fn garbage_is_skipped_without_panicking() {
        for line in [
            "",
            "#",
            "{}",
            "{A}0",
            "m",
            "m{",
            "m{a",
            "m{a=",
            "m{a=\"",
            "m{a=\"x\\",
            "m{a=\"x\"",
            "m{a=\"x\"}",
            "m{a=\"x\"}x",
            "m{a=\"x\" b=\"y\"} 1",
            "m{=\"x\"} 1",
            "m 1e400",
            "m inf",
            "m 0x10",
            "9m 1",
            "m{a=\"é\\é\"}",
            "\u{0}\u{ffff}",
            "m{a=\"x\"}1",
        ] {
            assert_eq!(sample(line), None, "{line:?}");
        }
        let mut bytes: Vec<u8> = (0..=255).collect();
        bytes.extend_from_slice(SCRAPE.as_bytes());
        bytes.extend((0..4096_u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
        let text = String::from_utf8_lossy(&bytes);
        for cut in (0..text.len()).step_by(7) {
            if text.is_char_boundary(cut) {
                let _ = Reading::of(&text[..cut]);
                let _ = Reading::of(&text[cut..]);
            }
        }
    }

    #[test]
    fn bad_values_and_too_many_buckets_are_left_out() {
        let mut text = String::from(
            "http_requests_total{status=\"500\"} -5\nhttp_requests_total{status=\"500\"} NaN\nhttp_requests_total{status=\"5000\"} 2\nhttp_request_duration_seconds_bucket{le=\"NaN\"} 1\nhttp_request_duration_seconds_bucket{le=\"x\"} 1\n",
        );
        for bound in 0..1000 {
            text.push_str(&format!(
                "http_request_duration_seconds_bucket{{le=\"{bound}\"}} 1\n"
            ));
        }
        let reading = Reading::of(&text);
        assert_eq!((reading.requests, reading.errors), (2.0, 0.0));
        assert_eq!(reading.buckets.len(), MAX_BUCKETS);
        assert_eq!(reading.buckets[0], (0.0, 1.0));
    }
}
