//! Early answers on the direct path: an upstream may answer (a 413 over quota, a 401) before
//! the request body has all arrived. The body's relay stops at the first byte of that answer,
//! which goes to the client at once; the rest of the body is not forwarded, and the client
//! connection ends with a lingering close after the answer (RFC 9112 §9.6).

use std::time::Duration;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use super::response::{RelayError, relay};

/// How long a connection whose body was answered early reads what its client still sends.
const LINGER: Duration = Duration::from_secs(2);
/// How much of it is read (and dropped) at most.
const LINGER_BYTES: usize = 1024 * 1024;

/// Relays `length` body bytes from `client` to `upstream` within `timeout` (past it: the
/// client's fault, [`RelayError::Source`]). `None`: the upstream answered (or closed) first,
/// and the relay stopped there.
pub(super) async fn relay_body(
    client: &mut TcpStream,
    upstream: &mut TcpStream,
    length: u64,
    timeout: Duration,
) -> Option<Result<(), RelayError>> {
    let (mut from_upstream, mut to_upstream) = upstream.split();
    let mut probe = [0u8; 1];
    tokio::select! {
        _ = from_upstream.peek(&mut probe) => None,
        sent = tokio::time::timeout(timeout, relay(client, &mut to_upstream, length)) => {
            Some(sent.unwrap_or(Err(RelayError::Source)))
        }
    }
}

/// Closes a client connection whose request body was answered before it ended: the gateway's
/// side is shut first, and what the client still sends is read and dropped for a while
/// ([`LINGER`], at most [`LINGER_BYTES`]), so the client reads the answer before the
/// connection goes (closing with unread bytes would reset it).
pub(super) async fn linger(client: &mut TcpStream) {
    if client.shutdown().await.is_err() {
        return;
    }
    let mut buffer = [0u8; 16 * 1024];
    let mut left = LINGER_BYTES;
    let _ = tokio::time::timeout(LINGER, async {
        while left > 0 {
            match client.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(read) => left = left.saturating_sub(read),
            }
        }
    })
    .await;
}
