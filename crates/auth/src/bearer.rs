//! The `Authorization` header rule every server of the platform applies (RFC 6750 §2.1).

/// Why an `Authorization` header carries no usable bearer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BearerError {
    /// Another scheme (`Basic …`), no token after `Bearer`, or bytes that are not a token.
    #[error("the Authorization header is not `Bearer <token>`")]
    Malformed,
}

/// The `WWW-Authenticate` value of a 401: `Bearer`, with `error="invalid_token"` when a token
/// was presented and refused (RFC 6750 §3).
pub fn www_authenticate(invalid_token: bool) -> &'static str {
    if invalid_token {
        r#"Bearer realm="platform", error="invalid_token""#
    } else {
        r#"Bearer realm="platform""#
    }
}

/// The token of an `Authorization` header's value: `Ok(None)` when there is no header,
/// `Ok(Some(token))` for `Bearer <token>` (scheme case-insensitive), an error for anything else.
pub fn bearer_token(header: Option<&[u8]>) -> Result<Option<&str>, BearerError> {
    let Some(value) = header else {
        return Ok(None);
    };
    let value = std::str::from_utf8(value).map_err(|_| BearerError::Malformed)?;
    let (scheme, token) = value.split_once(' ').ok_or(BearerError::Malformed)?;
    let token = token.trim_matches(' ');
    let token_chars = |c: char| c.is_ascii_alphanumeric() || "-._~+/=".contains(c);
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || !token.chars().all(token_chars)
    {
        return Err(BearerError::Malformed);
    }
    Ok(Some(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bearer_tokens_are_taken() {
        assert_eq!(bearer_token(None), Ok(None));
        assert_eq!(
            bearer_token(Some(b"Bearer abc.def-g_h")),
            Ok(Some("abc.def-g_h"))
        );
        assert_eq!(bearer_token(Some(b"bearer  abc ")), Ok(Some("abc")));
        for bad in [
            &b"Basic dXNlcjpwYXNz"[..],
            b"Bearer",
            b"Bearer ",
            b"Bearer a b",
            b"Bearer \xff",
        ] {
            assert_eq!(
                bearer_token(Some(bad)),
                Err(BearerError::Malformed),
                "{bad:?}"
            );
        }
    }
}
