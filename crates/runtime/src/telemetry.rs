//! Structured logging: one JSON object per line (`ts level msg service version` plus fields), or
//! on a terminal a compact coloured text line with the same fields (`LOG_FORMAT`).
//!
//! [`init`] builds the process's one asynchronous drain: stdout, and with `LOG_DIR` also
//! `combined.log` (every line) and `error.log` (errors only) in that directory, always JSON.
//! [`LogFilter`] decides per target which records are written (`LOG_LEVEL`, `RUST_LOG`). The channel
//! blocks rather than drops when full, and [`LogGuard`] flushes it when dropped at exit. Lines
//! are written out in batches (at most 50 ms late), so a busy service makes few system calls for
//! its logs (docs/benchmarks.md, "What the users-service profile showed"). Records of libraries
//! that log through the `log` crate (sqlx, hyper, …) reach the same drain.
//!
//! A process serving several services (the `stack`) calls [`init`] once and gives each service
//! [`service_logger`] of the root logger.

use std::{
    fs::OpenOptions,
    io,
    path::Path,
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};

use slog::{Drain, FnValue, Level, Logger, PushFnValue, o};

use crate::{
    config::ProcessArgs,
    log_filter::{FilterDrain, LogFilter},
};

/// Flushes the asynchronous drain when dropped. Keep it alive until the process ends.
pub struct LogGuard {
    /// slog-async's guard; its drop joins the logging thread after the last record is written.
    _async_guard: Option<slog_async::AsyncGuard>,
}

type BoxedDrain = Box<dyn Drain<Ok = (), Err = slog::Never> + Send>;

/// The lower-case level name the logs use (`info`, `error`, …), as winston writes them.
fn level_name(level: Level) -> &'static str {
    match level {
        Level::Critical => "critical",
        Level::Error => "error",
        Level::Warning => "warn",
        Level::Info => "info",
        Level::Debug => "debug",
        Level::Trace => "trace",
    }
}

fn json_builder<W: io::Write + Send + 'static>(writer: W) -> slog_json::JsonBuilder<W> {
    slog_json::Json::new(writer).add_key_value(o!(
        "ts" => FnValue(|_| chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        "level" => FnValue(|record| level_name(record.level())),
        "msg" => PushFnValue(|record, serializer| serializer.emit(record.msg())),
    ))
}

/// A JSON drain that writes each record straight to `writer`, unbatched (for tests that read
/// the lines back).
pub fn json_drain<W: io::Write + Send + 'static>(writer: W) -> slog_json::Json<W> {
    json_builder(writer).build()
}

fn log_file(dir: &Path, name: &str) -> io::Result<std::fs::File> {
    std::fs::create_dir_all(dir)?;
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(name))
}

/// How long a finished log line may wait in memory before it is written out.
const FLUSH_INTERVAL: Duration = Duration::from_millis(50);
/// Lines are written out at once when this many bytes are waiting.
const BATCH_BYTES: usize = 64 * 1024;

/// A writer for a JSON drain that turns many lines into few system calls.
///
/// slog-json writes a record in many small pieces and then calls `flush`: the pieces collect in
/// `record`, and `flush` moves the finished line into a batch shared with a flusher thread,
/// which writes the batch out every [`FLUSH_INTERVAL`] (or at once past [`BATCH_BYTES`]).
/// Dropping the writer (when the drain stops at exit) writes everything out.
struct BatchedWriter {
    /// The record being serialized.
    record: Vec<u8>,
    /// Finished lines and where they go.
    batch: Arc<Mutex<Batch>>,
}

struct Batch {
    pending: Vec<u8>,
    target: Box<dyn io::Write + Send>,
}

impl Batch {
    fn write_out(&mut self) {
        if !self.pending.is_empty() {
            // A log target that fails (a closed stdout) has nowhere to report to.
            let _ = self
                .target
                .write_all(&self.pending)
                .and_then(|()| self.target.flush());
            self.pending.clear();
        }
    }
}

impl BatchedWriter {
    fn new(target: Box<dyn io::Write + Send>) -> Self {
        let batch = Arc::new(Mutex::new(Batch {
            pending: Vec::with_capacity(BATCH_BYTES),
            target,
        }));
        let weak = Arc::downgrade(&batch);
        std::thread::Builder::new()
            .name("log-flush".into())
            .spawn(move || {
                while let Some(batch) = weak.upgrade() {
                    batch.lock().expect("log batch lock").write_out();
                    drop(batch);
                    std::thread::sleep(FLUSH_INTERVAL);
                }
            })
            .expect("spawning the log flusher");
        Self {
            record: Vec::with_capacity(1024),
            batch,
        }
    }
}

impl io::Write for BatchedWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.record.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let mut batch = self.batch.lock().expect("log batch lock");
        batch.pending.extend_from_slice(&self.record);
        self.record.clear();
        if batch.pending.len() >= BATCH_BYTES {
            batch.write_out();
        }
        Ok(())
    }
}

impl Drop for BatchedWriter {
    fn drop(&mut self) {
        let _ = io::Write::flush(self);
        self.batch.lock().expect("log batch lock").write_out();
    }
}

fn batched_json_drain(target: Box<dyn io::Write + Send>) -> slog_json::Json<BatchedWriter> {
    json_builder(BatchedWriter::new(target))
        .set_flush(true)
        .build()
}

/// The human format: time, coloured level, message, then the record's and the logger's fields.
fn text_drain() -> BoxedDrain {
    let decorator = slog_term::TermDecorator::new().stdout().build();
    Box::new(
        slog_term::FullFormat::new(decorator)
            .use_custom_timestamp(|out: &mut dyn io::Write| {
                write!(out, "{}", chrono::Local::now().format("%H:%M:%S%.3f"))
            })
            .build()
            .fuse(),
    )
}

/// Builds the process's root logger (field `version`) and routes `log` records into it
/// (field `service` = `process_name`), both filtered by the process's [`LogFilter`].
pub fn init(
    process_name: &'static str,
    process: &ProcessArgs,
    filter: LogFilter,
) -> io::Result<(Logger, LogGuard)> {
    let stdout: BoxedDrain = if process.log_format.is_text() {
        text_drain()
    } else {
        Box::new(batched_json_drain(Box::new(io::stdout())).fuse())
    };
    let drain: BoxedDrain = match process.log_dir.as_deref() {
        None => stdout,
        Some(dir) => {
            let combined = batched_json_drain(Box::new(log_file(dir, "combined.log")?)).fuse();
            let errors = batched_json_drain(Box::new(log_file(dir, "error.log")?))
                .fuse()
                .filter_level(Level::Error)
                .fuse();
            Box::new(slog::Duplicate::new(stdout, slog::Duplicate::new(combined, errors)).fuse())
        }
    };
    let (drain, guard) = slog_async::Async::new(drain)
        .chan_size(16_384)
        .overflow_strategy(slog_async::OverflowStrategy::Block)
        .thread_name("slog".into())
        .build_with_guard();
    let drain = Arc::new(drain);
    // After the guard is dropped at exit the channel is closed; a late record (a background
    // task of a library) is then dropped instead of panicking the process on its way out.
    // Filtered before the channel: a record the filter drops costs a comparison, not a copy
    // of its fields sent to the logging thread.
    let root = Logger::root(
        FilterDrain {
            inner: drain.clone(),
            filter: filter.clone(),
        }
        .ignore_res(),
        o!("version" => env!("CARGO_PKG_VERSION")),
    );
    // `log` records are filtered by their own target in the bridge; the slog record carrying
    // one has the bridge's module, so it goes to the unfiltered channel.
    let bridged = Logger::root(
        drain.ignore_res(),
        o!("version" => env!("CARGO_PKG_VERSION")),
    );
    bridge_log_crate(bridged.new(o!("service" => process_name)), filter);
    Ok((
        root,
        LogGuard {
            _async_guard: Some(guard),
        },
    ))
}

/// The logger a service logs through: the root with its `service` field.
pub fn service_logger(root: &Logger, service: &'static str) -> Logger {
    root.new(o!("service" => service))
}

/// A logger that writes nothing, unless `TEST_LOG` is set, then JSON to stdout synchronously
/// (for tests, where an asynchronous drain could lose the last lines of a failing test).
pub fn test_logger(service: &'static str) -> Logger {
    if std::env::var_os("TEST_LOG").is_some() {
        let drain = std::sync::Mutex::new(json_drain(io::stdout())).fuse();
        Logger::root(
            drain,
            o!("service" => service, "version" => env!("CARGO_PKG_VERSION")),
        )
    } else {
        Logger::root(slog::Discard, o!())
    }
}

struct LogBridge {
    /// The unfiltered logger the records go to.
    logger: Logger,
    /// The process's filter, applied to each record's own target.
    filter: LogFilter,
}

impl log::Log for LogBridge {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        self.filter.enabled(metadata.target(), metadata.level())
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let target = record.target().to_owned();
        let args = record.args();
        match record.level() {
            log::Level::Error => slog::error!(self.logger, "{}", args; "target" => target),
            log::Level::Warn => slog::warn!(self.logger, "{}", args; "target" => target),
            log::Level::Info => slog::info!(self.logger, "{}", args; "target" => target),
            log::Level::Debug => slog::debug!(self.logger, "{}", args; "target" => target),
            log::Level::Trace => slog::trace!(self.logger, "{}", args; "target" => target),
        }
    }

    fn flush(&self) {}
}

/// Installs the `log` bridge once per process; later calls keep the first.
fn bridge_log_crate(logger: Logger, filter: LogFilter) {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let max_level = filter.max_level();
        if log::set_boxed_logger(Box::new(LogBridge { logger, filter })).is_ok() {
            log::set_max_level(max_level);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_one_json_object_per_line_with_the_contract_fields() {
        let buffer = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
        struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl io::Write for Shared {
            fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
                self.0.lock().expect("buffer lock").extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let drain = std::sync::Mutex::new(json_drain(Shared(buffer.clone()))).fuse();
        let logger = Logger::root(drain, o!("service" => "users", "version" => "1.2.3"));
        slog::error!(logger, "request"; "status" => 500);
        slog::info!(logger, "second");
        let text = String::from_utf8(buffer.lock().expect("buffer lock").clone()).expect("utf-8");
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).expect("a JSON object per line"))
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["msg"], "request");
        assert_eq!(lines[0]["level"], "error");
        assert_eq!(lines[0]["service"], "users");
        assert_eq!(lines[0]["version"], "1.2.3");
        assert_eq!(lines[0]["status"], 500);
        assert!(chrono::DateTime::parse_from_rfc3339(lines[0]["ts"].as_str().expect("ts")).is_ok());
        assert_eq!(lines[1]["level"], "info");
    }
}
