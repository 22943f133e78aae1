//! The refusals of `/socket.io/`: the Engine.IO specification's (its codes and messages, its
//! body `{"code","message"}`), and the platform's (429, 503) with the contract's error body.

use actix_web::{HttpResponse, ResponseError};
use server::ApiError;

/// The refusals of the Engine.IO specification (the reference server's codes and messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineError {
    /// `transport` missing or neither `polling` nor `websocket`.
    TransportUnknown,
    /// `sid` names no open session.
    SessionUnknown,
    /// A handshake that is not a `GET`.
    BadHandshakeMethod,
    /// Anything else wrong with a request of an open session.
    BadRequest,
    /// The `Origin` may not open the chat.
    Forbidden,
    /// `EIO` missing or not `4`.
    UnsupportedProtocolVersion,
}

impl EngineError {
    /// Its code and message.
    pub fn code_and_message(self) -> (u8, &'static str) {
        match self {
            Self::TransportUnknown => (0, "Transport unknown"),
            Self::SessionUnknown => (1, "Session ID unknown"),
            Self::BadHandshakeMethod => (2, "Bad handshake method"),
            Self::BadRequest => (3, "Bad request"),
            Self::Forbidden => (4, "Forbidden"),
            Self::UnsupportedProtocolVersion => (5, "Unsupported protocol version"),
        }
    }

    /// The answer: 400 (403 for [`Self::Forbidden`]) with `{"code","message"}`.
    pub fn response(self) -> HttpResponse {
        let (code, message) = self.code_and_message();
        let mut response = if self == Self::Forbidden {
            HttpResponse::Forbidden()
        } else {
            HttpResponse::BadRequest()
        };
        response.json(serde_json::json!({ "code": code, "message": message }))
    }
}

/// A handshake refused: by the specification's rule, or the platform's (429, 503).
#[derive(Debug)]
pub enum Refused {
    /// The specification's refusal.
    Engine(EngineError),
    /// The platform's, with the contract's error body.
    Platform(ApiError),
}

impl Refused {
    /// The answer.
    pub fn response(&self) -> HttpResponse {
        match self {
            Self::Engine(error) => error.response(),
            Self::Platform(error) => error.error_response(),
        }
    }
}
