//! Load generator for `bench/chat.sh` (not a test).
//!
//! - `chat_load idle ws://127.0.0.1:3004 N HOLD_SECS`: opens N connections (rooms of
//!   `CHAT_LOAD_ROOM_SIZE`, default 100),
//!   prints `connected N`, keeps them (answering pings) for HOLD_SECS, then exits.
//! - `chat_load socketio-idle ws://127.0.0.1:3004 N HOLD_SECS`: the same over Socket.IO
//!   (`/socket.io/`, WebSocket transport, the room in the `CONNECT` payload), answering the
//!   Engine.IO pings.
//! - `chat_load room ws://127.0.0.1:3004 N SECS`: N clients in one room, each sending one
//!   message a second for SECS seconds (the send time in the text); every client measures the
//!   delivery latency of every message it receives. Prints one JSON line of results.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// Headers a browser sends with its WebSocket handshake (besides the protocol's own and its
/// `Origin`, the page's own host, which the request names).
const BROWSER_HEADERS: &[(&str, &str)] = &[
    (
        "user-agent",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
         Chrome/131.0.0.0 Safari/537.36",
    ),
    ("pragma", "no-cache"),
    ("cache-control", "no-cache"),
    ("accept-encoding", "gzip, deflate, br, zstd"),
    ("accept-language", "en-GB,en;q=0.9,fr;q=0.8"),
    (
        "sec-websocket-extensions",
        "permessage-deflate; client_max_window_bits",
    ),
    (
        "cookie",
        "session=4f1c2a9e8b7d6c5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b1a; \
         theme=dark; locale=en-GB; consent=analytics%3Dno%26ads%3Dno",
    ),
];

fn micros_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX)
        })
}

/// Which protocol the idle clients speak.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Protocol {
    /// `/chat/ws`.
    Native,
    /// `/socket.io/` over WebSocket.
    SocketIo,
}

async fn idle(base: String, count: usize, hold: Duration, protocol: Protocol) {
    let address = address_of(&base);
    let connected = Arc::new(tokio::sync::Semaphore::new(0));
    let gate = Arc::new(tokio::sync::Semaphore::new(200));
    let room_size: usize = std::env::var("CHAT_LOAD_ROOM_SIZE")
        .ok()
        .and_then(|size| size.parse().ok())
        .unwrap_or(100)
        .max(1);
    for n in 0..count {
        let (address, connected, gate) = (address.clone(), connected.clone(), gate.clone());
        tokio::spawn(async move {
            let permit = gate.acquire_owned().await.expect("gate");
            let room = format!("idle-{}", n / room_size);
            let path = match protocol {
                Protocol::Native => format!("/chat/ws?room={room}&name=u{n}"),
                Protocol::SocketIo => "/socket.io/?EIO=4&transport=websocket".to_owned(),
            };
            let mut client = RawClient::connect_with_retries(&address, &path, n)
                .await
                .unwrap_or_else(|error| panic!("connecting u{n}: {error}"));
            if protocol == Protocol::SocketIo {
                let connect = format!("40{{\"room\":\"{room}\"}}");
                if client.send(1, connect.as_bytes()).await.is_err() {
                    return;
                }
            }
            // welcome and history (Socket.IO: the open packet and the CONNECT answer first)
            let wanted = if protocol == Protocol::SocketIo { 4 } else { 2 };
            let mut events = 0;
            while events < wanted {
                while let Some(frame) = client.next_frame() {
                    events += usize::from(frame.opcode == 1);
                }
                if events < wanted && !matches!(client.fill().await, Ok(length) if length > 0) {
                    return;
                }
            }
            drop(permit);
            connected.add_permits(1);
            // Idle: answer the server's pings until it closes.
            loop {
                let mut pong = None;
                while let Some(frame) = client.next_frame() {
                    match frame.opcode {
                        8 => return,
                        9 => pong = Some((10, frame.payload.to_vec())),
                        // An Engine.IO ping, answered with its pong.
                        1 if frame.payload == b"2" => pong = Some((1, b"3".to_vec())),
                        _ => {}
                    }
                }
                if let Some((opcode, payload)) = pong
                    && client.send(opcode, &payload).await.is_err()
                {
                    return;
                }
                if !matches!(client.fill().await, Ok(length) if length > 0) {
                    return;
                }
            }
        });
    }
    let all = connected
        .acquire_many(u32::try_from(count).expect("count"))
        .await
        .expect("connected");
    all.forget();
    println!("connected {count}");
    tokio::time::sleep(hold).await;
}

/// `host:port` of a `ws://host:port` base.
fn address_of(base: &str) -> String {
    base.trim_start_matches("ws://")
        .trim_end_matches('/')
        .to_owned()
}

/// A chat client: a WebSocket over a plain socket that parses frames in place, one task a
/// client. At a million frames a second the generator must cost less than the server it
/// measures: tokio-tungstenite (a task pair per client, a message allocated per frame) took as
/// much CPU as the chat-service itself on the shared cores. Its handshake carries a browser's
/// headers, so the server sees the request heads it would in use.
struct RawClient {
    socket: TcpStream,
    /// The masking key of its frames (clients must mask; any key will do).
    mask: [u8; 4],
    /// Bytes read and not yet parsed.
    buffer: Vec<u8>,
    /// Where the unparsed bytes start.
    start: usize,
}

/// A server frame: its opcode and payload.
struct Frame<'a> {
    opcode: u8,
    payload: &'a [u8],
}

impl RawClient {
    /// Connects client number `n`, trying again for two seconds while the server is busy.
    async fn connect_with_retries(address: &str, path: &str, n: usize) -> std::io::Result<Self> {
        let mut attempt = 0;
        loop {
            match Self::connect(address, path, n).await {
                Err(error) if attempt < 20 => {
                    eprintln!("retrying {path}: {error}");
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                result => return result,
            }
        }
    }

    async fn connect(address: &str, path: &str, n: usize) -> std::io::Result<Self> {
        let mut socket = TcpStream::connect(address).await?;
        socket.set_nodelay(true)?;
        let browser_headers: String = BROWSER_HEADERS
            .iter()
            .map(|(name, value)| format!("{name}: {value}\r\n"))
            .collect();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {address}\r\n\
             Origin: http://{address}\r\n\
             Upgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             {browser_headers}\r\n"
        );
        socket.write_all(request.as_bytes()).await?;
        let mut client = Self {
            socket,
            mask: u32::try_from(n)
                .unwrap_or(0)
                .wrapping_mul(2_654_435_761)
                .to_be_bytes(),
            buffer: Vec::with_capacity(64 * 1024),
            start: 0,
        };
        loop {
            if let Some(end) = client.buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                if !client.buffer.starts_with(b"HTTP/1.1 101") {
                    return Err(std::io::Error::other(
                        String::from_utf8_lossy(&client.buffer).into_owned(),
                    ));
                }
                client.start = end + 4;
                return Ok(client);
            }
            if client.fill().await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    /// Reads more bytes after those not yet parsed; 0 at the end of the stream.
    async fn fill(&mut self) -> std::io::Result<usize> {
        if self.start > 0 && self.start == self.buffer.len() {
            self.buffer.clear();
            self.start = 0;
        } else if self.start > self.buffer.capacity() / 2 {
            self.buffer.drain(..self.start);
            self.start = 0;
        }
        if self.buffer.capacity() - self.buffer.len() < 16 * 1024 {
            self.buffer.reserve(64 * 1024);
        }
        self.socket.read_buf(&mut self.buffer).await
    }

    /// The next complete frame in the buffer, if there is one.
    fn next_frame(&mut self) -> Option<Frame<'_>> {
        let bytes = &self.buffer[self.start..];
        if bytes.len() < 2 {
            return None;
        }
        let (length, header) = match bytes[1] & 0x7f {
            126 if bytes.len() >= 4 => (usize::from(u16::from_be_bytes([bytes[2], bytes[3]])), 4),
            127 if bytes.len() >= 10 => (
                usize::try_from(u64::from_be_bytes(bytes[2..10].try_into().ok()?)).ok()?,
                10,
            ),
            126 | 127 => return None,
            short => (usize::from(short), 2),
        };
        if bytes.len() < header + length {
            return None;
        }
        let opcode = bytes[0] & 0x0f;
        let payload_start = self.start + header;
        self.start = payload_start + length;
        Some(Frame {
            opcode,
            payload: &self.buffer[payload_start..payload_start + length],
        })
    }

    /// Sends one masked client frame.
    async fn send(&mut self, opcode: u8, payload: &[u8]) -> std::io::Result<()> {
        let mask = self.mask;
        let mut frame = Vec::with_capacity(payload.len() + 8);
        frame.push(0x80 | opcode);
        match u16::try_from(payload.len()) {
            Ok(length) if length < 126 => frame.push(0x80 | u8::try_from(length).expect("< 126")),
            Ok(length) => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&length.to_be_bytes());
            }
            Err(_) => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(payload.len() as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(&mask);
        frame.extend(
            payload
                .iter()
                .zip(mask.iter().cycle())
                .map(|(byte, key)| byte ^ key),
        );
        self.socket.write_all(&frame).await
    }
}

/// The send time in a chat message this generator sent: `"text":"t<micros>"`.
fn sent_micros(payload: &[u8]) -> Option<u64> {
    const MARK: &[u8] = br#""text":"t"#;
    let at = payload
        .windows(MARK.len())
        .position(|window| window == MARK)?
        + MARK.len();
    let digits = payload[at..]
        .iter()
        .take_while(|byte| byte.is_ascii_digit());
    let mut value = 0u64;
    let mut any = false;
    for digit in digits {
        value = value * 10 + u64::from(digit - b'0');
        any = true;
    }
    any.then_some(value)
}

/// What one room client saw.
struct ClientResult {
    latencies: Vec<u64>,
    /// The close code, when the server closed the connection.
    closed_with: Option<u16>,
}

/// What the room's clients share to start together.
struct Start {
    /// Limits the connections being opened at once.
    gate: tokio::sync::Semaphore,
    /// Every client has joined.
    connected: tokio::sync::Barrier,
    /// userJoined events received, by all clients.
    joins_seen: AtomicU64,
    /// The room is quiet: sending starts.
    started: tokio::sync::Barrier,
}

type StartWait<'a> = std::pin::Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

async fn room_client(
    address: String,
    n: usize,
    count: usize,
    seconds: u64,
    start: Arc<Start>,
) -> ClientResult {
    let mut waits: StartWait<'_> = Box::pin(async {
        start.connected.wait().await;
        start.started.wait().await;
    });
    let mut started = false;
    let result = drive_room_client(
        &address,
        n,
        (count, seconds),
        &start,
        &mut waits,
        &mut started,
    )
    .await;
    // A client that ended before the start still takes its part in it: the others wait for all.
    if !started {
        waits.await;
    }
    result
}

async fn drive_room_client(
    address: &str,
    n: usize,
    (count, seconds): (usize, u64),
    start: &Start,
    waits: &mut StartWait<'_>,
    started: &mut bool,
) -> ClientResult {
    let mut result = ClientResult {
        latencies: Vec::with_capacity(usize::try_from(seconds).unwrap_or(0) * count),
        closed_with: None,
    };
    let permit = start.gate.acquire().await.expect("gate");
    let mut client = match RawClient::connect_with_retries(
        address,
        &format!("/chat/ws?room=bench&name=c{n}"),
        n,
    )
    .await
    {
        Ok(client) => client,
        Err(error) => {
            eprintln!("c{n} could not connect: {error}");
            return result;
        }
    };
    drop(permit);
    // 0: joining and waiting for the start, 2: sending, 3: draining, 4: closing.
    let mut phase = 0;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut sent = 0;
    let mut drain_until = None;
    loop {
        let mut pong = None;
        while let Some(frame) = client.next_frame() {
            match frame.opcode {
                1 => {
                    if frame.payload.starts_with(br#"{"type":"userJoined""#) {
                        start.joins_seen.fetch_add(1, Ordering::Relaxed);
                    } else if let Some(sent) = sent_micros(frame.payload) {
                        result.latencies.push(micros_now().saturating_sub(sent));
                    }
                }
                8 => {
                    result.closed_with = frame
                        .payload
                        .get(..2)
                        .map(|code| u16::from_be_bytes([code[0], code[1]]));
                    return result;
                }
                9 => pong = Some(frame.payload.to_vec()),
                _ => {}
            }
        }
        if let Some(payload) = pong {
            let _ = client.send(10, &payload).await;
        }
        tokio::select! {
            read = client.fill() => {
                if !matches!(read, Ok(length) if length > 0) {
                    return result;
                }
            }
            () = &mut *waits, if phase < 2 => {
                *started = true;
                // Spread the clients over the second.
                let offset = Duration::from_micros((n as u64 * 1_000_000) / count as u64);
                tick = tokio::time::interval_at(tokio::time::Instant::now() + offset, Duration::from_secs(1));
                phase = 2;
            }
            _ = tick.tick(), if phase == 2 => {
                let text = format!(r#"{{"type":"chatMessage","text":"t{}"}}"#, micros_now());
                if client.send(1, text.as_bytes()).await.is_err() {
                    return result;
                }
                sent += 1;
                if sent == seconds {
                    phase = 3;
                    // Let the last messages arrive, then leave.
                    drain_until = Some(tokio::time::Instant::now() + Duration::from_secs(3));
                }
            }
            () = async { tokio::time::sleep_until(drain_until.expect("draining")).await }, if phase == 3 => {
                let _ = client.send(8, &1000u16.to_be_bytes()).await;
                phase = 4;
            }
        }
    }
}

async fn room(base: String, count: usize, seconds: u64) {
    let address = address_of(&base);
    // Every client joins, then all wait until each earlier client has seen every later one's
    // userJoined (one per pair): the join storm is not part of what is measured.
    let start = Arc::new(Start {
        gate: tokio::sync::Semaphore::new(100),
        connected: tokio::sync::Barrier::new(count + 1),
        joins_seen: AtomicU64::new(0),
        started: tokio::sync::Barrier::new(count + 1),
    });
    let clients: Vec<_> = (0..count)
        .map(|n| {
            tokio::spawn(room_client(
                address.clone(),
                n,
                count,
                seconds,
                start.clone(),
            ))
        })
        .collect();
    start.connected.wait().await;
    // One userJoined a pair, or two for a pair that joined at the same moment: wait for at
    // least that many and for the count to stop moving.
    let pairs = count as u64 * (count as u64 - 1) / 2;
    let settle = std::time::Instant::now();
    let mut seen = start.joins_seen.load(Ordering::Relaxed);
    while settle.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = start.joins_seen.load(Ordering::Relaxed);
        if now >= pairs && now == seen {
            break;
        }
        seen = now;
    }
    eprintln!("userJoined seen before the start: {seen} (pairs: {pairs})");
    start.started.wait().await;
    let begin = std::time::Instant::now();
    let mut latencies = Vec::new();
    let mut cut_off = 0;
    for client in clients {
        let mut result = client.await.expect("client");
        latencies.append(&mut result.latencies);
        // Cut off: closed with anything but our own goodbye, or never connected at all.
        if result.closed_with != Some(1000) {
            cut_off += 1;
        }
    }
    let elapsed = begin.elapsed().as_secs_f64() - 3.0;
    latencies.sort_unstable();
    let percentile = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |micros| *micros as f64 / 1000.0)
    };
    let expected = count as u64 * count as u64 * seconds;
    println!(
        "{{\"clients\":{count},\"seconds\":{seconds},\"delivered\":{},\"expected\":{expected},\"delivered_per_s\":{:.0},\"p50_ms\":{:.2},\"p99_ms\":{:.2},\"max_ms\":{:.2},\"cut_off\":{cut_off}}}",
        latencies.len(),
        latencies.len() as f64 / elapsed,
        percentile(0.5),
        percentile(0.99),
        percentile(1.0),
    );
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: chat_load idle|socketio-idle|room ws://host:port COUNT SECS";
    let (Some(mode), Some(base), Some(count), Some(seconds)) =
        (args.get(1), args.get(2), args.get(3), args.get(4))
    else {
        panic!("{usage}");
    };
    let count: usize = count.parse().expect(usage);
    let seconds: u64 = seconds.parse().expect(usage);
    match mode.as_str() {
        "idle" => {
            idle(
                base.clone(),
                count,
                Duration::from_secs(seconds),
                Protocol::Native,
            )
            .await
        }
        "socketio-idle" => {
            idle(
                base.clone(),
                count,
                Duration::from_secs(seconds),
                Protocol::SocketIo,
            )
            .await;
        }
        "room" => room(base.clone(), count, seconds).await,
        _ => panic!("{usage}"),
    }
}
