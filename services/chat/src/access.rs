//! Who may open a chat connection, and under which name: the handshake's `Origin` check, the
//! access token in one of three places, and the name the server assigns.
//!
//! Everything here runs before the upgrade, so a refusal is a plain HTTP answer with the JSON
//! error body (403 for an origin, 401 for a token), never a WebSocket that opens and closes.
//!
//! Where a token may be (the first one present is used, the others are not read):
//!
//! 1. `Authorization: Bearer <token>`: clients that can set headers;
//! 2. `Sec-WebSocket-Protocol: bearer, <token>`: the subprotocol list offers `bearer` and the
//!    token as the entry right after it (browsers: `new WebSocket(url, ['bearer', token])`). The
//!    handshake selects `bearer`; the token is never echoed;
//! 3. `?access_token=<token>` (RFC 6750 §2.3): the least preferred, since URLs get logged (the
//!    platform's access logs record the path alone, never the query).

use std::fmt;

use actix_web::{HttpRequest, http::header};
use server::ApiError;

/// The subprotocol that announces a token in the subprotocol list, and the one a handshake
/// that offered it selects.
pub const BEARER_PROTOCOL: &str = "bearer";

/// Longest part of a refused `Origin` quoted back in the error message.
const QUOTED_ORIGIN_CHARS: usize = 100;

/// A web origin (RFC 6454): scheme, host and port, compared normalised (lowercase, the
/// scheme's default port made explicit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// `http`, `https`, … (lowercase).
    scheme: String,
    /// The host (lowercase; an IPv6 literal keeps its brackets).
    host: String,
    /// The port, or the scheme's default; `None` for a scheme without one.
    port: Option<u16>,
}

impl Origin {
    /// Reads `scheme://host[:port]` (a trailing `/` is tolerated); `None` for anything else,
    /// the opaque origin `null` included.
    pub fn parse(text: &str) -> Option<Self> {
        let (scheme, authority) = text.trim().split_once("://")?;
        let authority = authority.strip_suffix('/').unwrap_or(authority);
        let valid_scheme = scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if scheme.is_empty() || !valid_scheme {
            return None;
        }
        let scheme = scheme.to_ascii_lowercase();
        let (host, port) = split_authority(authority)?;
        let port = port.or_else(|| default_port(&scheme));
        Some(Self { scheme, host, port })
    }

    /// Whether a request addressed to `authority` (a `Host` value) is on this origin's host
    /// and port; a `Host` without a port means this origin's scheme's default port.
    fn is_on(&self, authority: &str) -> bool {
        split_authority(authority.trim()).is_some_and(|(host, port)| {
            host == self.host && port.or_else(|| default_port(&self.scheme)) == self.port
        })
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(port) if Some(port) != default_port(&self.scheme) => {
                write!(f, "{}://{}:{port}", self.scheme, self.host)
            }
            _ => write!(f, "{}://{}", self.scheme, self.host),
        }
    }
}

/// The origins `CHAT_ALLOWED_ORIGINS` adds to the request's own host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedOrigins(Vec<Origin>);

impl AllowedOrigins {
    /// Reads a comma-separated list of origins (empty: none); an entry that is not an origin
    /// is an error naming it.
    pub fn parse(text: &str) -> Result<Self, String> {
        text.split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                Origin::parse(entry)
                    .ok_or_else(|| format!("{entry:?} is not an origin (scheme://host[:port])"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }
}

/// 403 unless the handshake's `Origin` is allowed: none at all (not a browser), the request's
/// own host (its `Host`, or a `X-Forwarded-Host` a proxy set: the gateway forwards the
/// client's), or one of `allowed`.
///
/// A page on another site cannot set `Host` or `X-Forwarded-Host` on a WebSocket, and its
/// browser always sends its `Origin`: that is what stops another site from opening the chat
/// with its visitors' credentials. Clients that are not browsers can send any `Origin`; the
/// token is what holds against them.
pub fn check_origin(request: &HttpRequest, allowed: &AllowedOrigins) -> Result<(), ApiError> {
    let mut values = request.headers().get_all(header::ORIGIN);
    let Some(value) = values.next() else {
        return Ok(());
    };
    let text = value.to_str().unwrap_or("");
    let refused = || {
        let quoted: String = text.chars().take(QUOTED_ORIGIN_CHARS).collect();
        ApiError::Forbidden(format!(
            "the origin {quoted:?} may not open the chat: only this host and CHAT_ALLOWED_ORIGINS may"
        ))
    };
    if values.next().is_some() {
        return Err(refused());
    }
    let origin = Origin::parse(text).ok_or_else(refused)?;
    if allowed.0.contains(&origin) {
        return Ok(());
    }
    let headers = request.headers();
    let hosts = headers
        .get_all(header::HOST)
        .chain(headers.get_all("x-forwarded-host"));
    let on_own_host = hosts
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|authority| origin.is_on(authority));
    if on_own_host { Ok(()) } else { Err(refused()) }
}

/// Where the handshake presented a token, if it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presented {
    /// No token anywhere: a guest.
    Nothing,
    /// The `Authorization` header's value.
    Header(Vec<u8>),
    /// The entry after `bearer` in the subprotocol list (empty when there was none).
    Subprotocol(String),
    /// The `access_token` query parameter.
    Query(String),
}

impl Presented {
    /// The token of `request`, from the first place that has one (see the module's list).
    pub fn of(request: &HttpRequest, access_token: Option<&str>) -> Self {
        if let header @ Self::Header(_) = Self::in_header(request) {
            return header;
        }
        if let Some(token) = subprotocol_token(request) {
            return Self::Subprotocol(token);
        }
        match access_token {
            Some(token) => Self::Query(token.to_owned()),
            None => Self::Nothing,
        }
    }

    /// The `Authorization` header's token alone: how a plain HTTP request (the history's
    /// pages) presents one.
    pub fn in_header(request: &HttpRequest) -> Self {
        request
            .headers()
            .get(header::AUTHORIZATION)
            .map_or(Self::Nothing, |value| {
                Self::Header(value.as_bytes().to_vec())
            })
    }

    /// The `Authorization` value the token amounts to (`None`: no token).
    pub fn as_authorization(&self) -> Option<Vec<u8>> {
        match self {
            Self::Nothing => None,
            Self::Header(value) => Some(value.clone()),
            Self::Subprotocol(token) | Self::Query(token) => {
                Some(format!("Bearer {token}").into_bytes())
            }
        }
    }
}

/// The entry after `bearer` in the `Sec-WebSocket-Protocol` offers (every header line, in
/// order); `Some("")` when `bearer` is offered without one after it.
fn subprotocol_token(request: &HttpRequest) -> Option<String> {
    let mut offers = request
        .headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .flat_map(|value| value.to_str().unwrap_or("").split(','))
        .map(str::trim);
    offers.find(|offer| offer.eq_ignore_ascii_case(BEARER_PROTOCOL))?;
    Some(offers.next().unwrap_or("").to_owned())
}

/// Who a connection chats as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The name shown with its messages: the account's, or a server-assigned `guest-xxxx`.
    pub name: String,
    /// The account's id; `None` for a guest.
    pub user_id: Option<i64>,
}

/// Checks the presented token (401 `invalid_token` if it does not verify, 503 if the keys to
/// check it cannot be had) and names the connection: the account's name for a token, a
/// `guest-xxxx` name otherwise, or 401 when guests are not allowed.
pub async fn identify(
    request: &HttpRequest,
    presented: &Presented,
    guests: bool,
) -> Result<Identity, ApiError> {
    identify_with(
        server::verifier(request),
        presented.as_authorization(),
        guests,
    )
    .await
}

/// [`identify`] for an `Authorization` value (`None`: no token) checked with `verifier`, the
/// one rule for every way a token arrives (the Socket.IO `auth` payload comes after the
/// handshake's request, so its session keeps the verifier).
pub async fn identify_with(
    verifier: Option<std::sync::Arc<auth::Verifier>>,
    authorization: Option<Vec<u8>>,
    guests: bool,
) -> Result<Identity, ApiError> {
    let Some(authorization) = authorization else {
        return if guests {
            Ok(Identity {
                name: guest_name(),
                user_id: None,
            })
        } else {
            Err(ApiError::Unauthorized {
                message: "sign in required: this chat takes no guests; present an access token \
                          (Authorization: Bearer, the `bearer` subprotocol, access_token, or \
                          Socket.IO's auth {token})"
                    .into(),
                invalid_token: false,
            })
        };
    };
    let verifier = verifier
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("no token verifier installed")))?;
    let principal = server::authenticate(&verifier, Some(&authorization))
        .await?
        .ok_or_else(server::sign_in_required)?;
    Ok(Identity {
        name: account_name(principal.name.as_deref(), principal.user_id),
        user_id: Some(principal.user_id),
    })
}

/// A signed-in user's chat name: the token's `name` made clean ([`crate::names::clean`]: NFC,
/// no control or invisible characters, trimmed, bounded); `user-<id>` when nothing is left.
pub fn account_name(name: Option<&str>, user_id: i64) -> String {
    let cleaned = crate::names::clean(name.unwrap_or(""));
    if cleaned.is_empty() {
        format!("user-{user_id}")
    } else {
        cleaned
    }
}

/// A guest's name: `guest-` and four random hex digits. Guests do not choose names, so none can
/// pass for an account.
pub fn guest_name() -> String {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("guest-{}", &suffix[..4])
}

/// `host[:port]` of an authority, the host lowercase; `None` if it is not one (user info, a
/// path, an empty host, a bad port).
fn split_authority(authority: &str) -> Option<(String, Option<u16>)> {
    if authority.is_empty() || authority.contains(['@', '/', '?', '#', ' ']) {
        return None;
    }
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':')?),
        };
        (format!("[{inside}]"), port)
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host.to_owned(), Some(port)),
            None => (authority.to_owned(), None),
        }
    };
    if host.is_empty() || host == "[]" {
        return None;
    }
    let port = match port {
        None => None,
        Some(port) if !port.is_empty() && port.chars().all(|c| c.is_ascii_digit()) => {
            Some(port.parse().ok()?)
        }
        Some(_) => return None,
    };
    Some((host.to_ascii_lowercase(), port))
}

/// The default port of a scheme browsers put in origins.
fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_normalised() {
        let origin = |text: &str| Origin::parse(text).expect(text);
        assert_eq!(
            origin("HTTP://Example.COM"),
            origin("http://example.com:80")
        );
        assert_eq!(
            origin("https://example.com/"),
            origin("https://example.com:443")
        );
        assert_ne!(origin("http://example.com"), origin("https://example.com"));
        assert_ne!(
            origin("http://example.com:8080"),
            origin("http://example.com")
        );
        assert_eq!(origin("http://[::1]:3000").to_string(), "http://[::1]:3000");
        assert_eq!(
            origin("https://a.example:443").to_string(),
            "https://a.example"
        );
        for bad in [
            "null",
            "example.com",
            "http://",
            "http://a/b",
            "http://u@a",
            "http://a:port",
            "http://a:99999",
            "http://a:",
            "://a",
            "ht tp://a",
        ] {
            assert_eq!(Origin::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn an_origin_is_on_a_host_with_the_same_host_and_port() {
        let origin = |text: &str| Origin::parse(text).expect(text);
        assert!(origin("http://localhost:3000").is_on("localhost:3000"));
        assert!(origin("http://LOCALHOST:3000").is_on("localhost:3000"));
        assert!(origin("https://chat.example").is_on("chat.example"));
        assert!(origin("https://chat.example").is_on("chat.example:443"));
        assert!(origin("http://[::1]:8080").is_on("[::1]:8080"));
        assert!(!origin("http://localhost:3000").is_on("localhost:3004"));
        assert!(!origin("http://localhost:3000").is_on("localhost"));
        assert!(!origin("http://evil.example").is_on("chat.example"));
        assert!(!origin("http://chat.example.evil").is_on("chat.example"));
    }

    #[test]
    fn allowed_lists_are_read_whole_or_refused() {
        let origin = |text: &str| Origin::parse(text).expect(text);
        assert_eq!(AllowedOrigins::parse(""), Ok(AllowedOrigins::default()));
        let list =
            AllowedOrigins::parse(" https://a.example , http://b.example:8080,").expect("a list");
        assert_eq!(
            list,
            AllowedOrigins(vec![
                origin("https://a.example"),
                origin("http://b.example:8080")
            ])
        );
        assert!(AllowedOrigins::parse("https://a.example,b.example").is_err());
    }

    #[test]
    fn names() {
        assert_eq!(account_name(Some(" Ann\u{7} Lee "), 3), "Ann Lee");
        assert_eq!(account_name(Some("\n"), 3), "user-3");
        assert_eq!(account_name(Some("\u{202E}\u{200B}"), 3), "user-3");
        assert_eq!(account_name(None, 42), "user-42");
        assert_eq!(account_name(Some(&"x".repeat(300)), 1).chars().count(), 200);
        let guest = guest_name();
        assert!(guest.starts_with("guest-") && guest.len() == 10, "{guest}");
        assert!(guest[6..].chars().all(|c| c.is_ascii_hexdigit()), "{guest}");
    }
}
