//! Load generator for `bench/chat.sh` (not a test).
//!
//! - `chat_load idle ws://127.0.0.1:3004 N HOLD_SECS`: opens N connections (rooms of
//!   `CHAT_LOAD_ROOM_SIZE`, default 100),
//!   prints `connected N`, keeps reading for HOLD_SECS, then exits.
//! - `chat_load room ws://127.0.0.1:3004 N SECS`: N clients in one room, each sending one
//!   message a second for SECS seconds (the send time in the text); every client measures the
//!   delivery latency of every message it receives. Prints one JSON line of results.

use std::{
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::{connect_async, tungstenite::Message};

fn micros_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX)
        })
}

async fn connect(
    base: &str,
    room: &str,
    name: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let url = format!("{base}/chat/ws?room={room}&name={name}");
    for attempt in 0.. {
        match connect_async(url.as_str()).await {
            Ok((socket, _)) => return socket,
            Err(error) if attempt < 20 => {
                eprintln!("retrying {name}: {error}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => panic!("connecting {name}: {error}"),
        }
    }
    unreachable!("the loop returns or panics")
}

async fn idle(base: String, count: usize, hold: Duration) {
    let connected = Arc::new(tokio::sync::Semaphore::new(0));
    let gate = Arc::new(tokio::sync::Semaphore::new(200));
    let room_size: usize = std::env::var("CHAT_LOAD_ROOM_SIZE")
        .ok()
        .and_then(|size| size.parse().ok())
        .unwrap_or(100)
        .max(1);
    for n in 0..count {
        let (base, connected, gate) = (base.clone(), connected.clone(), gate.clone());
        tokio::spawn(async move {
            let permit = gate.acquire_owned().await.expect("gate");
            let mut socket =
                connect(&base, &format!("idle-{}", n / room_size), &format!("u{n}")).await;
            // welcome and history
            for _ in 0..2 {
                let _ = socket.next().await;
            }
            drop(permit);
            connected.add_permits(1);
            while let Some(Ok(_)) = socket.next().await {}
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

async fn room(base: String, count: usize, seconds: u64) {
    let started = Arc::new(tokio::sync::Barrier::new(count + 1));
    let mut clients = Vec::new();
    let gate = Arc::new(tokio::sync::Semaphore::new(100));
    for n in 0..count {
        let (base, started, gate) = (base.clone(), started.clone(), gate.clone());
        clients.push(tokio::spawn(async move {
            let permit = gate.acquire_owned().await.expect("gate");
            let socket = connect(&base, "bench", &format!("c{n}")).await;
            drop(permit);
            let (mut sink, mut stream) = socket.split();
            let reader = tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut closed_with = None;
                while let Some(frame) = stream.next().await {
                    match frame {
                        Ok(Message::Text(text)) => {
                            let now = micros_now();
                            if let Some(sent) = text
                                .as_str()
                                .split("\"text\":\"t")
                                .nth(1)
                                .and_then(|rest| rest.split('"').next())
                                .and_then(|sent| sent.parse::<u64>().ok())
                            {
                                latencies.push(now.saturating_sub(sent));
                            }
                        }
                        Ok(Message::Close(frame)) => {
                            closed_with = frame.map(|f| u16::from(f.code));
                            break;
                        }
                        Ok(_) => {}
                        Err(_) => break,
                    }
                }
                (latencies, closed_with)
            });
            started.wait().await;
            // Spread the clients over the second.
            tokio::time::sleep(Duration::from_micros((n as u64 * 1_000_000) / count as u64)).await;
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            for _ in 0..seconds {
                tick.tick().await;
                let text = format!(r#"{{"type":"chatMessage","text":"t{}"}}"#, micros_now());
                if sink.send(Message::text(text)).await.is_err() {
                    break;
                }
            }
            // Let the last messages arrive, then leave.
            tokio::time::sleep(Duration::from_secs(3)).await;
            let _ = sink.send(Message::Close(None)).await;
            reader.await.expect("reader")
        }));
    }
    started.wait().await;
    let begin = std::time::Instant::now();
    let mut latencies = Vec::new();
    let mut cut_off = 0;
    for client in clients {
        let (mut client_latencies, closed_with) = client.await.expect("client");
        latencies.append(&mut client_latencies);
        if closed_with.is_some_and(|code| code != 1000) {
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
    let usage = "usage: chat_load idle|room ws://host:port COUNT SECS";
    let (Some(mode), Some(base), Some(count), Some(seconds)) =
        (args.get(1), args.get(2), args.get(3), args.get(4))
    else {
        panic!("{usage}");
    };
    let count: usize = count.parse().expect(usage);
    let seconds: u64 = seconds.parse().expect(usage);
    match mode.as_str() {
        "idle" => idle(base.clone(), count, Duration::from_secs(seconds)).await,
        "room" => room(base.clone(), count, seconds).await,
        _ => panic!("{usage}"),
    }
}
