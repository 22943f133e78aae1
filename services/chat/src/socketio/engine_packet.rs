//! Engine.IO v4 packets (the `engine.io-protocol` specification, "Protocol" and "Packet
//! encoding"): one per WebSocket frame, or several in an HTTP long-polling body separated by
//! `\x1e`, a binary one there base64-encoded behind a `b`.

use base64::Engine as _;
use bytes::Bytes;

/// What separates the packets of a long-polling body.
pub const SEPARATOR: char = '\x1e';

/// The server's `ping` (the heartbeat).
pub const PING: &str = "2";
/// The server's `noop`: answers the pending `GET` of a session that is upgrading.
pub const NOOP: &str = "6";
/// The server's `close`: answers a `GET` of a session that ended.
pub const CLOSE: &str = "1";
/// The answer to the upgrade probe.
pub const PROBE_PONG: &str = "3probe";

/// A packet a client sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// `1`: the client ends the session.
    Close,
    /// `2…`: a ping (`2probe` is the upgrade probe).
    Ping(String),
    /// `3…`: the answer to the server's ping.
    Pong(String),
    /// `4…`: a message (a Socket.IO packet).
    Message(String),
    /// A binary message (a Socket.IO attachment).
    Binary(Bytes),
    /// `5`: the upgrade to WebSocket is complete.
    Upgrade,
    /// `6`: nothing.
    Noop,
}

/// Why a packet could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// An empty packet.
    #[error("an empty Engine.IO packet")]
    Empty,
    /// A type a client does not send (`0` open, or no type at all).
    #[error("Engine.IO packet type {0:?} is not one a client sends")]
    Type(char),
    /// A `b` packet that is not base64.
    #[error("a binary Engine.IO packet that is not base64")]
    Base64,
}

/// Reads one text packet (a WebSocket text frame, or one packet of a polling body).
pub fn decode(text: &str) -> Result<Packet, PacketError> {
    let mut chars = text.chars();
    let kind = chars.next().ok_or(PacketError::Empty)?;
    let data = chars.as_str();
    Ok(match kind {
        '1' => Packet::Close,
        '2' => Packet::Ping(data.to_owned()),
        '3' => Packet::Pong(data.to_owned()),
        '4' => Packet::Message(data.to_owned()),
        '5' => Packet::Upgrade,
        '6' => Packet::Noop,
        'b' => Packet::Binary(Bytes::from(
            base64::engine::general_purpose::STANDARD
                .decode(data)
                .map_err(|_| PacketError::Base64)?,
        )),
        other => return Err(PacketError::Type(other)),
    })
}

/// Reads the packets of a long-polling `POST` body.
pub fn decode_payload(body: &str) -> Result<Vec<Packet>, PacketError> {
    body.split(SEPARATOR).map(decode).collect()
}

/// A `message` packet carrying `data` (an encoded Socket.IO packet).
pub fn message(data: &str) -> String {
    format!("4{data}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_of_the_specification_read() {
        assert_eq!(decode("4hello"), Ok(Packet::Message("hello".into())));
        assert_eq!(decode("2probe"), Ok(Packet::Ping("probe".into())));
        assert_eq!(decode("3"), Ok(Packet::Pong(String::new())));
        assert_eq!(decode("5"), Ok(Packet::Upgrade));
        assert_eq!(
            decode("bAQIDBA=="),
            Ok(Packet::Binary(Bytes::from_static(&[1, 2, 3, 4])))
        );
        assert_eq!(decode(""), Err(PacketError::Empty));
        assert_eq!(decode("0{}"), Err(PacketError::Type('0')));
        assert_eq!(decode("b!!"), Err(PacketError::Base64));
        assert_eq!(
            decode_payload("4hello\x1ebAQIDBA==\x1e4world"),
            Ok(vec![
                Packet::Message("hello".into()),
                Packet::Binary(Bytes::from_static(&[1, 2, 3, 4])),
                Packet::Message("world".into()),
            ])
        );
        assert_eq!(decode_payload("4a\x1e\x1e4b"), Err(PacketError::Empty));
    }
}
