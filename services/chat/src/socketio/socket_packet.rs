//! Socket.IO v5 packets (the `socket.io-protocol` specification, "Packet encoding"), each the
//! payload of an Engine.IO `message`:
//! `<type>[<attachments>-][<namespace>,][<ack id>][<JSON data>]`.

use serde_json::Value;

/// The main namespace, the only one this server has.
pub const MAIN_NAMESPACE: &str = "/";

/// Longest ack id a client may send, in digits (a `u64` holds 19).
const MAX_ACK_DIGITS: usize = 18;

/// The type of a Socket.IO packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `0`: connect to a namespace.
    Connect,
    /// `1`: leave a namespace.
    Disconnect,
    /// `2`: an event.
    Event,
    /// `3`: the answer to an event that asked for one.
    Ack,
    /// `4`: a refused connect (server to client).
    ConnectError,
    /// `5`: an event with binary attachments.
    BinaryEvent,
    /// `6`: an ack with binary attachments.
    BinaryAck,
}

/// A Socket.IO packet a client sent.
#[derive(Debug, Clone, PartialEq)]
pub struct SocketPacket {
    /// Its type.
    pub kind: Kind,
    /// Binary attachments that follow it (binary types only).
    pub attachments: usize,
    /// Its namespace (`/` when absent).
    pub namespace: String,
    /// The ack id of an event that asks for an answer.
    pub ack: Option<u64>,
    /// Its JSON data.
    pub data: Option<Value>,
}

/// Reads a Socket.IO packet; what is wrong with it otherwise.
pub fn decode(text: &str) -> Result<SocketPacket, String> {
    let mut rest = text;
    let kind = match rest.as_bytes().first() {
        Some(b'0') => Kind::Connect,
        Some(b'1') => Kind::Disconnect,
        Some(b'2') => Kind::Event,
        Some(b'3') => Kind::Ack,
        Some(b'4') => Kind::ConnectError,
        Some(b'5') => Kind::BinaryEvent,
        Some(b'6') => Kind::BinaryAck,
        _ => return Err("unknown Socket.IO packet type".to_owned()),
    };
    rest = &rest[1..];
    let mut attachments = 0;
    if matches!(kind, Kind::BinaryEvent | Kind::BinaryAck) {
        let (count, after) = rest
            .split_once('-')
            .ok_or("a binary packet without its attachment count")?;
        attachments = count
            .parse()
            .map_err(|_| "a binary packet's attachment count is not a number")?;
        rest = after;
    }
    let mut namespace = MAIN_NAMESPACE.to_owned();
    if rest.starts_with('/') {
        let (name, after) = rest.split_once(',').unwrap_or((rest, ""));
        namespace = name.to_owned();
        rest = after;
    }
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let mut ack = None;
    if digits > 0 {
        if digits > MAX_ACK_DIGITS {
            return Err("an ack id over 18 digits".to_owned());
        }
        ack = rest[..digits].parse().ok();
        rest = &rest[digits..];
    }
    let data = if rest.is_empty() {
        None
    } else {
        Some(serde_json::from_str(rest).map_err(|error| format!("invalid JSON: {error}"))?)
    };
    Ok(SocketPacket {
        kind,
        attachments,
        namespace,
        ack,
        data,
    })
}

/// The namespace part of an encoded packet: nothing for the main one.
fn namespace_prefix(namespace: &str) -> String {
    if namespace == MAIN_NAMESPACE {
        String::new()
    } else {
        format!("{namespace},")
    }
}

/// `CONNECT` with the socket's id: the main namespace let the client in.
pub fn connect(sid: &str) -> String {
    format!("0{}", serde_json::json!({ "sid": sid }))
}

/// `CONNECT_ERROR` to `namespace`: `{"message", "data"?}` (socket.io-client's `connect_error`
/// gives the message, and `data` as the error's `data`).
pub fn connect_error(namespace: &str, message: &str, data: Option<Value>) -> String {
    let mut payload = serde_json::json!({ "message": message });
    if let Some(data) = data {
        payload["data"] = data;
    }
    format!("4{}{payload}", namespace_prefix(namespace))
}

/// `EVENT` in the main namespace: `["<name>", <data>]`, `data` already JSON.
pub fn event(name: &str, data: &str) -> String {
    let name = Value::from(name);
    format!("2[{name},{data}]")
}

/// `ACK` of the event `id` in the main namespace, with one argument.
pub fn ack(id: u64, argument: &Value) -> String {
    format!("3{id}[{argument}]")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn packets_of_the_specification_read() {
        let packet = decode(r#"2["hello",1]"#).expect("event");
        assert_eq!(packet.kind, Kind::Event);
        assert_eq!(packet.namespace, "/");
        assert_eq!(packet.ack, None);
        assert_eq!(packet.data, Some(json!(["hello", 1])));
        let packet = decode(r#"2/admin,456["project:delete",123]"#).expect("event");
        assert_eq!(packet.namespace, "/admin");
        assert_eq!(packet.ack, Some(456));
        let packet = decode(r#"51-["hello",{"_placeholder":true,"num":0}]"#).expect("binary");
        assert_eq!((packet.kind, packet.attachments), (Kind::BinaryEvent, 1));
        let packet = decode("0").expect("connect");
        assert_eq!((packet.kind, packet.data), (Kind::Connect, None));
        let packet = decode(r#"0/admin,{"token":"123"}"#).expect("connect");
        assert_eq!(packet.namespace, "/admin");
        assert_eq!(packet.data, Some(json!({"token": "123"})));
        assert_eq!(decode("1/admin,").expect("disconnect").namespace, "/admin");
        assert!(decode("9").is_err());
        assert!(decode("").is_err());
        assert!(decode("2[").is_err());
        assert!(decode("5x-[]").is_err());
        assert!(decode(&format!("2{}[\"a\"]", "9".repeat(19))).is_err());
    }

    #[test]
    fn packets_encode_as_the_specification_shows() {
        assert_eq!(connect("abc"), r#"0{"sid":"abc"}"#);
        assert_eq!(
            connect_error("/admin", "Invalid namespace", None),
            r#"4/admin,{"message":"Invalid namespace"}"#
        );
        assert_eq!(
            connect_error("/", "no", Some(json!({"code": "unauthorized"}))),
            r#"4{"data":{"code":"unauthorized"},"message":"no"}"#
        );
        assert_eq!(event("welcome", "{}"), r#"2["welcome",{}]"#);
        assert_eq!(ack(7, &json!({"ok": true})), r#"37[{"ok":true}]"#);
    }
}
