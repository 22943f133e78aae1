//! A scripted upstream: it answers with exact bytes, which no HTTP library would write, and
//! keeps the exact bytes of every request it read, which no HTTP library would show.

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicUsize, Ordering},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// An upstream that answers the n-th request of its k-th connection with `script[k][n]`
/// (`None`: close the connection without answering), closes each connection after its last
/// reply, and keeps what it read.
pub struct ScriptedUpstream {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// Connections accepted.
    pub connections: Arc<AtomicUsize>,
    /// Each request as read: head and body.
    received: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl ScriptedUpstream {
    /// Serves `script`, one entry per connection.
    pub async fn start(script: Vec<Vec<Option<&'static [u8]>>>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let connections = Arc::new(AtomicUsize::new(0));
        let received = Arc::new(Mutex::new(Vec::new()));
        let (accepted, seen) = (connections.clone(), received.clone());
        tokio::spawn(async move {
            for replies in script {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                accepted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve_script(stream, replies, seen.clone()));
            }
        });
        Self {
            url,
            connections,
            received,
        }
    }

    /// Every connection answers its one request with `reply`, then closes.
    pub async fn always(reply: &'static [u8]) -> Self {
        Self::start(vec![vec![Some(reply)]; 64]).await
    }

    /// The request lines received, in order.
    pub fn requests(&self) -> Vec<String> {
        self.received()
            .iter()
            .map(|request| {
                let text = String::from_utf8_lossy(request);
                text.lines().next().unwrap_or("").to_owned()
            })
            .collect()
    }

    /// The requests received, as read.
    pub fn received(&self) -> Vec<Vec<u8>> {
        self.received.lock().expect("lock").clone()
    }
}

async fn serve_script(
    mut stream: TcpStream,
    replies: Vec<Option<&'static [u8]>>,
    seen: Arc<Mutex<Vec<Vec<u8>>>>,
) {
    let mut buffer = Vec::new();
    for reply in replies {
        let Some(length) = read_request(&mut stream, &mut buffer).await else {
            return;
        };
        seen.lock()
            .expect("lock")
            .push(buffer.drain(..length).collect());
        match reply {
            Some(bytes) => {
                if stream.write_all(bytes).await.is_err() {
                    return;
                }
            }
            None => return,
        }
    }
}

/// Reads one request into `buffer`: its length (head and body, by `Content-Length` or to the
/// end of a chunked body), `None` when the connection ends first.
async fn read_request(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<usize> {
    loop {
        if let Some(end) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            let head_end = end + 4;
            let head = String::from_utf8_lossy(&buffer[..head_end]).to_lowercase();
            let field = |name: &str| {
                head.lines().find_map(|line| {
                    let (field, value) = line.split_once(':')?;
                    (field == name).then(|| value.trim().to_owned())
                })
            };
            if field("transfer-encoding").is_some_and(|value| value.ends_with("chunked")) {
                loop {
                    let body = &buffer[head_end..];
                    let last = if body.starts_with(b"0\r\n\r\n") {
                        Some(5)
                    } else {
                        body.windows(7)
                            .position(|window| window == b"\r\n0\r\n\r\n")
                            .map(|at| at + 7)
                    };
                    if let Some(last) = last {
                        return Some(head_end + last);
                    }
                    if stream.read_buf(buffer).await.ok()? == 0 {
                        return None;
                    }
                }
            }
            let length: usize = field("content-length")
                .and_then(|value| value.parse().ok())
                .unwrap_or(0);
            while buffer.len() < head_end + length {
                if stream.read_buf(buffer).await.ok()? == 0 {
                    return None;
                }
            }
            return Some(head_end + length);
        }
        if stream.read_buf(buffer).await.ok()? == 0 {
            return None;
        }
    }
}
