//! The `Host` rule (RFC 9112 §3.2, RFC 9110 §7.2), once for both paths: which host a request
//! is for, or why it names none the gateway forwards. Hyper's path calls [`request_host`] from
//! `framing.rs`; the direct path calls it from `direct/request.rs` and hands a request it
//! refuses to hyper's path, which answers the 400.

/// Why a request names no host the gateway forwards; each is a 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostError {
    /// No `Host` field and no absolute-form authority, or an empty `Host`.
    Missing,
    /// More than one `Host` field: the gateway and a service could each read another one.
    Repeated,
    /// A `Host` (or an absolute-form authority) that is not `host[:port]`: a value with
    /// spaces, a list, a path, user info, a port that is not digits.
    Invalid,
}

impl HostError {
    /// The error body's message.
    pub fn message(self) -> &'static str {
        match self {
            Self::Missing => "a request needs a Host (RFC 9112 §3.2)",
            Self::Repeated => "more than one Host header",
            Self::Invalid => "the Host is not host[:port] (RFC 9110 §7.2)",
        }
    }
}

/// The host a request is for, from its `Host` field values (`hosts`, in order) and its
/// target's authority (`authority`, for an absolute-form target):
/// - two `Host` fields or more: [`HostError::Repeated`], whatever the target;
/// - a `Host` that is not `host[:port]`: [`HostError::Invalid`], whatever the target;
/// - an absolute-form target's authority wins over the `Host` field (RFC 9112 §3.2.2); one
///   with user info is [`HostError::Invalid`] (RFC 9110 §4.2.4);
/// - else the one `Host`, not empty: [`HostError::Missing`] without it.
pub fn request_host<'h>(
    hosts: impl IntoIterator<Item = &'h [u8]>,
    authority: Option<&'h str>,
) -> Result<&'h [u8], HostError> {
    let mut hosts = hosts.into_iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(HostError::Repeated);
    }
    if let Some(host) = host
        && !host.is_empty()
        && !is_host_and_port(host)
    {
        return Err(HostError::Invalid);
    }
    match authority {
        Some(authority) if is_host_and_port(authority.as_bytes()) => Ok(authority.as_bytes()),
        Some(_) => Err(HostError::Invalid),
        None => host
            .filter(|host| !host.is_empty())
            .ok_or(HostError::Missing),
    }
}

/// Whether `value` is `uri-host [ ":" port ]` (RFC 3986 §3.2.2-3.2.3) with a host that is not
/// empty: an IPv6 literal in brackets, or a name (or IPv4 address) of unreserved characters,
/// sub-delimiters and percent-encoded octets; the port digits only.
fn is_host_and_port(value: &[u8]) -> bool {
    let (host, port) = match value.strip_prefix(b"[") {
        Some(literal) => {
            let Some(close) = literal.iter().position(|&byte| byte == b']') else {
                return false;
            };
            let address = std::str::from_utf8(&literal[..close]).unwrap_or("");
            if address.parse::<std::net::Ipv6Addr>().is_err() {
                return false;
            }
            (&b"[]"[..], &literal[close + 1..])
        }
        None => match value.iter().position(|&byte| byte == b':') {
            Some(colon) => (&value[..colon], &value[colon..]),
            None => (value, &b""[..]),
        },
    };
    let port_ok = match port.split_first() {
        None => true,
        Some((b':', digits)) => digits.iter().all(u8::is_ascii_digit),
        Some(_) => false,
    };
    port_ok && !host.is_empty() && (host == b"[]" || is_reg_name(host))
}

/// Whether `name` is a reg-name (or an IPv4 address, which is one too): unreserved
/// characters, sub-delimiters and `%` followed by two hex digits.
fn is_reg_name(name: &[u8]) -> bool {
    let mut at = 0;
    while let Some(&byte) = name.get(at) {
        if byte == b'%' {
            if !name
                .get(at + 1..at + 3)
                .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
            {
                return false;
            }
            at += 3;
            continue;
        }
        if !(byte.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=".contains(&byte)) {
            return false;
        }
        at += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host_of(
        hosts: &[&'static str],
        authority: Option<&'static str>,
    ) -> Result<&'static str, HostError> {
        request_host(hosts.iter().map(|host| host.as_bytes()), authority)
            .map(|host| std::str::from_utf8(host).expect("text"))
    }

    #[test]
    fn one_valid_host_or_the_targets_authority() {
        assert_eq!(host_of(&["h.example"], None), Ok("h.example"));
        assert_eq!(host_of(&["H.Example:8080"], None), Ok("H.Example:8080"));
        assert_eq!(host_of(&["[::1]:3000"], None), Ok("[::1]:3000"));
        assert_eq!(host_of(&["10.0.0.1"], None), Ok("10.0.0.1"));
        assert_eq!(
            host_of(&["caf%C3%A9.example"], None),
            Ok("caf%C3%A9.example")
        );
        assert_eq!(host_of(&["h:"], None), Ok("h:"), "an empty port is a port");
        assert_eq!(host_of(&["fake"], Some("real.example")), Ok("real.example"));
        assert_eq!(
            host_of(&[""], Some("real.example:81")),
            Ok("real.example:81")
        );
        assert_eq!(host_of(&[], Some("real.example")), Ok("real.example"));
    }

    #[test]
    fn no_host_two_hosts_or_an_invalid_one_is_refused() {
        assert_eq!(host_of(&[], None), Err(HostError::Missing));
        assert_eq!(host_of(&[""], None), Err(HostError::Missing));
        assert_eq!(host_of(&["a", "a"], None), Err(HostError::Repeated));
        assert_eq!(host_of(&["a", "b"], Some("c")), Err(HostError::Repeated));
        for invalid in [
            "a b", "a, b", "a/b", "user@h", "h:80x", "h:80:81", ":80", "[::1", "[zz]", "[::1]x",
            "h%4", "h%zz", "h\t", "a\"b",
        ] {
            assert_eq!(
                host_of(&[invalid], None),
                Err(HostError::Invalid),
                "{invalid}"
            );
            assert_eq!(
                host_of(&[invalid], Some("real.example")),
                Err(HostError::Invalid),
                "{invalid} beside an authority"
            );
        }
        assert_eq!(
            host_of(&["h"], Some("user@real.example")),
            Err(HostError::Invalid)
        );
    }
}
