//! Content negotiation of the one coding the platform compresses with: whether a request's
//! `Accept-Encoding` takes gzip (RFC 9110 §12.5.3). The actix services and the gateway both
//! serve answers kept compressed (vendored scripts and pages) and ask this.

/// Whether `Accept-Encoding` (every header line of it, as text) takes a gzip-encoded answer:
/// `gzip` (or its alias `x-gzip`) listed with a weight above 0, or, gzip not listed, `*` with a
/// weight above 0. A weight that is not a qvalue (`0` to `1`, at most three decimals) refuses
/// its coding: identity is always a safe answer.
pub fn accepts_gzip<'a>(accept_encoding: impl IntoIterator<Item = &'a str>) -> bool {
    let values: Vec<&str> = accept_encoding.into_iter().collect();
    gzip_weight(&values).is_some_and(|weight| weight > 0)
}

/// The weight `Accept-Encoding` gives gzip, in thousandths: its own (the highest, when listed
/// more than once), else `*`'s; `None` when neither is listed.
fn gzip_weight(values: &[&str]) -> Option<u16> {
    let mut gzip: Option<u16> = None;
    let mut any: Option<u16> = None;
    for coding in values.iter().flat_map(|value| value.split(',')) {
        let mut parts = coding.split(';');
        let name = parts.next().unwrap_or_default().trim();
        let mut weight = Some(1000);
        for parameter in parts {
            if let Some((key, value)) = parameter.split_once('=')
                && key.trim().eq_ignore_ascii_case("q")
            {
                weight = qvalue(value.trim());
            }
        }
        let weight = weight.unwrap_or(0);
        let slot = if name.eq_ignore_ascii_case("gzip") || name.eq_ignore_ascii_case("x-gzip") {
            &mut gzip
        } else if name == "*" {
            &mut any
        } else {
            continue;
        };
        *slot = Some(slot.map_or(weight, |seen| seen.max(weight)));
    }
    gzip.or(any)
}

/// A qvalue (`"0"`, `"0.5"`, `"1.000"`) in thousandths; `None` for anything else.
fn qvalue(value: &str) -> Option<u16> {
    let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|digit| digit.is_ascii_digit()) {
        return None;
    }
    let thousandths = fraction
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .fold(0, |sum, digit| sum * 10 + u16::from(digit - b'0'));
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_is_taken_unless_refused() {
        assert!(accepts_gzip(["gzip, deflate, br"]));
        assert!(accepts_gzip(["br;q=1.0, GZIP;q=0.5"]));
        assert!(accepts_gzip(["*"]));
        assert!(accepts_gzip(["x-gzip"]));
        assert!(!accepts_gzip(["gzip;q=0, br"]));
        assert!(!accepts_gzip(["gzip; q = 0"]));
        assert!(!accepts_gzip(["identity"]));
        assert!(!accepts_gzip([]));
        // Every header line counts.
        assert!(accepts_gzip(["br", "gzip"]));
    }

    #[test]
    fn gzip_is_refused_by_any_spelling_of_a_zero_weight_and_star_does_not_override_it() {
        let weight = |value: &str| gzip_weight(&[value]);
        for zero in ["q=0", "q=0.0", "q=0.00", "q=0.000", "Q=0.0", " q = 0.00 "] {
            assert_eq!(weight(&format!("gzip;{zero}")), Some(0), "{zero}");
        }
        // `*` stands for the codings not listed: gzip refused by name stays refused.
        assert_eq!(weight("gzip;q=0, *"), Some(0));
        assert_eq!(weight("*, gzip;q=0.0"), Some(0));
        assert_eq!(weight("*;q=0.5, br"), Some(500));
        assert_eq!(weight("*;q=0, br"), Some(0));
        assert_eq!(weight("gzip;q=0.001"), Some(1));
        assert_eq!(weight("gzip;q=1.000"), Some(1000));
        assert_eq!(weight("br, deflate"), None);
        // Not qvalues: the coding is refused (identity is always safe).
        for bad in ["q=1.5", "q=2", "q=0.0001", "q=-1", "q=", "q=abc", "q=1.001"] {
            assert_eq!(weight(&format!("gzip;{bad}")), Some(0), "{bad}");
        }
    }
}
