//! The flags and environment variables of `chat-service` ([`Config`]) and how the chat
//! behaves ([`Settings`], built from them with `From<&Config>`, or tuned by the tests).

use std::time::Duration;

use runtime::CommonArgs;

use crate::{
    access::AllowedOrigins,
    limits::{LimitSettings, Rate},
};

/// The longest ping interval: a Socket.IO long-polling `GET` is answered within one (by the
/// ping at the latest), which must come before the gateway's default response timeout (30 s);
/// 25 s is Socket.IO's own default, leaving 5 s for the network and a loaded instance.
pub const MAX_PING_INTERVAL_SECS: u64 = 25;

/// The flags and environment variables of `chat-service`.
#[derive(clap::Parser, Debug, Clone)]
#[command(
    name = "chat-service",
    version,
    about = "The real-time chat of the platform (WebSockets)"
)]
pub struct Config {
    /// What every service takes (`REDIS_URL` set: rooms shared by every instance).
    #[command(flatten)]
    pub common: CommonArgs,
    /// Seconds between heartbeat pings to each client, at most 25: a Socket.IO long-polling
    /// GET waits up to one interval, and must be answered within the gateway's response
    /// timeout (30 s by default)
    #[arg(long, env = "CHAT_PING_INTERVAL_SECS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=MAX_PING_INTERVAL_SECS))]
    pub chat_ping_interval_secs: u64,
    /// Seconds without a pong after which a client is disconnected
    #[arg(long, env = "CHAT_PONG_TIMEOUT_SECS", default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub chat_pong_timeout_secs: u64,
    /// Messages kept per room (older ones are deleted)
    #[arg(long, env = "CHAT_HISTORY_CAP", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(50..=1_000_000))]
    pub chat_history_cap: u64,
    /// Whether connections without a token may chat (as `guest-xxxx`); false: 401 without one
    #[arg(long, env = "CHAT_GUESTS", default_value_t = true, action = clap::ArgAction::Set)]
    pub chat_guests: bool,
    /// Origins besides the request's own host whose pages may open the chat, comma-separated
    /// (`https://app.example,http://localhost:5173`)
    #[arg(long, env = "CHAT_ALLOWED_ORIGINS", default_value = "", value_parser = AllowedOrigins::parse)]
    pub chat_allowed_origins: AllowedOrigins,
    /// Open WebSocket connections one client address may hold (an IPv6 client: its /64);
    /// more are refused with 429
    #[arg(long, env = "CHAT_CONNECTIONS_PER_ADDRESS", default_value_t = LimitSettings::DEFAULT.connections_per_address, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub chat_connections_per_address: u32,
    /// Chat messages per second one client address may send over all its connections
    #[arg(long, env = "CHAT_ADDRESS_MESSAGES_PER_SECOND", default_value_t = LimitSettings::DEFAULT.address.per_second, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub chat_address_messages_per_second: u32,
    /// Chat messages one client address may send at once over all its connections
    #[arg(long, env = "CHAT_ADDRESS_MESSAGE_BURST", default_value_t = LimitSettings::DEFAULT.address.burst, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub chat_address_message_burst: u32,
    /// Chat messages per second one account may send over all its connections
    #[arg(long, env = "CHAT_ACCOUNT_MESSAGES_PER_SECOND", default_value_t = LimitSettings::DEFAULT.account.per_second, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub chat_account_messages_per_second: u32,
    /// Chat messages one account may send at once over all its connections
    #[arg(long, env = "CHAT_ACCOUNT_MESSAGE_BURST", default_value_t = LimitSettings::DEFAULT.account.burst, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub chat_account_message_burst: u32,
}

/// The settings the flags give; what no flag sets keeps its [`Settings::default`].
impl From<&Config> for Settings {
    fn from(config: &Config) -> Self {
        Self {
            ping_interval: Duration::from_secs(config.chat_ping_interval_secs),
            pong_timeout: Duration::from_secs(config.chat_pong_timeout_secs),
            history_cap: usize::try_from(config.chat_history_cap).unwrap_or(usize::MAX),
            guests: config.chat_guests,
            allowed_origins: config.chat_allowed_origins.clone(),
            limits: LimitSettings {
                connections_per_address: config.chat_connections_per_address,
                address: Rate::new(
                    config.chat_address_messages_per_second,
                    config.chat_address_message_burst,
                ),
                account: Rate::new(
                    config.chat_account_messages_per_second,
                    config.chat_account_message_burst,
                ),
                ..LimitSettings::default()
            },
            ..Self::default()
        }
    }
}

/// How the chat behaves. The defaults are what the stack runs: a heartbeat every 5 s, 1 MiB
/// of frames per client queue, 50 messages of history on joining, 1 000 kept per room; tests
/// shorten the timings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Time between heartbeat pings.
    pub ping_interval: Duration,
    /// A client silent (no pong, no frame) this long is disconnected.
    pub pong_timeout: Duration,
    /// Bytes of frames a client's outbound queue holds; a client whose queue would overflow
    /// is disconnected (1013).
    pub outbound_bytes: usize,
    /// Largest frame (and fragmented message) a client may send; larger closes with 1009.
    pub max_frame_bytes: usize,
    /// Longest message text, in characters.
    pub max_text_chars: usize,
    /// Messages sent in `history` on joining.
    pub history_len: usize,
    /// Messages kept per room.
    pub history_cap: usize,
    /// Connections per client address, and messages per connection, account and address.
    pub limits: LimitSettings,
    /// Prefix of the pub/sub channels (instances sharing rooms use the same one).
    pub channel_prefix: String,
    /// How often each instance announces its online counts (and 3× this: when it is forgotten).
    pub presence_interval: Duration,
    /// How long shutdown waits for clients to be closed before stopping the server.
    pub shutdown_grace: Duration,
    /// How long a room's fan-out spaces its deliveries per member here (at most 10 ms, none
    /// under 1 ms): a busy big room sends each client its events in fewer, larger writes.
    pub coalesce_per_member: Duration,
    /// How long a name's lease in Redis lasts unless renewed (every third of it): how long a
    /// name stays taken after its instance died.
    pub name_lease: Duration,
    /// Whether a connection without a token is let in, under a `guest-xxxx` name.
    pub guests: bool,
    /// Origins whose pages may open the chat besides the request's own host.
    pub allowed_origins: AllowedOrigins,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            ping_interval: Duration::from_secs(5),
            pong_timeout: Duration::from_secs(15),
            // 5 s of a room of 1 000 clients sending a message a second each; 500 messages of
            // the longest text.
            outbound_bytes: 1024 * 1024,
            max_frame_bytes: 64 * 1024,
            max_text_chars: 2000,
            history_len: 50,
            history_cap: 1000,
            limits: LimitSettings::default(),
            channel_prefix: "chat".to_owned(),
            presence_interval: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(5),
            coalesce_per_member: Duration::from_micros(10),
            name_lease: Duration::from_secs(30),
            guests: true,
            allowed_origins: AllowedOrigins::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn the_flags_give_the_settings_and_the_rest_keeps_its_default() {
        let config = Config::try_parse_from([
            "chat-service",
            "--chat-ping-interval-secs=7",
            "--chat-pong-timeout-secs=21",
            "--chat-history-cap=500",
            "--chat-guests=false",
            "--chat-connections-per-address=3",
            "--chat-address-messages-per-second=4",
            "--chat-address-message-burst=5",
            "--chat-account-messages-per-second=6",
            "--chat-account-message-burst=8",
        ])
        .expect("flags parse");
        let settings = Settings::from(&config);
        assert_eq!(settings.ping_interval, Duration::from_secs(7));
        assert_eq!(settings.pong_timeout, Duration::from_secs(21));
        assert_eq!(settings.history_cap, 500);
        assert!(!settings.guests);
        assert_eq!(settings.limits.connections_per_address, 3);
        assert_eq!(settings.limits.address, Rate::new(4, 5));
        assert_eq!(settings.limits.account, Rate::new(6, 8));
        let default = Settings::default();
        assert_eq!(settings.history_len, default.history_len);
        assert_eq!(settings.outbound_bytes, default.outbound_bytes);
        assert_eq!(settings.channel_prefix, default.channel_prefix);
    }

    #[test]
    fn a_ping_interval_longer_than_a_long_poll_may_wait_behind_the_gateway_is_refused() {
        let with = |secs: &str| {
            Config::try_parse_from(["chat-service", &format!("--chat-ping-interval-secs={secs}")])
        };
        let longest = with("25").expect("25 s is accepted");
        assert_eq!(longest.chat_ping_interval_secs, MAX_PING_INTERVAL_SECS);
        for refused in ["26", "3600", "0"] {
            assert!(with(refused).is_err(), "{refused} s accepted");
        }
    }
}
