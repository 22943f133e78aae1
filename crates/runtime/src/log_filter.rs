//! Which log records are written, and in which format.
//!
//! [`LogFilter`] reads the `RUST_LOG` syntax (env_filter's parser): a default level and
//! per-target levels, `info,sqlx=warn,users_service::routes=debug`. A record's target is its
//! tag where it has one (`access` for the access lines), else its module path
//! (`users_service::routes`), or, for libraries logging through the `log` crate, the target they
//! give (`sqlx::query`); a directive matches a target and everything under it. [`LogFormat`] picks JSON or the human text format.

use std::{fmt, io::IsTerminal, str::FromStr, sync::Arc};

use slog::{Drain, Level, OwnedKVList, Record};

/// A parsed `LOG_LEVEL` / `RUST_LOG` value.
#[derive(Clone)]
pub struct LogFilter {
    /// The text it was parsed from (shown by `--help` and in errors).
    spec: Arc<str>,
    /// The directives, most specific first.
    filter: Arc<env_filter::Filter>,
}

impl LogFilter {
    /// Whether a record of `target` at `level` is written.
    pub fn enabled(&self, target: &str, level: log::Level) -> bool {
        self.filter
            .enabled(&log::Metadata::builder().target(target).level(level).build())
    }

    /// The most verbose level any directive lets through (records above it are dropped before
    /// any target is looked at).
    pub fn max_level(&self) -> log::LevelFilter {
        self.filter.filter()
    }
}

impl Default for LogFilter {
    /// `info` for every target.
    fn default() -> Self {
        "info".parse().expect("info is a valid filter")
    }
}

impl FromStr for LogFilter {
    type Err = String;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let spec = spec.trim();
        if spec.is_empty() {
            return Ok(Self::default());
        }
        // Plain levels and `target=level` pairs only: env_filter's `/regex` message filter
        // would make every record's text formatted before it is filtered.
        if spec.contains('/') {
            return Err(format!(
                "`{spec}`: expected a level or target=level pairs, like `info,sqlx=warn`"
            ));
        }
        let expected = "expected a level or target=level pairs, like `info,sqlx=warn`";
        // A bare word is a level: env_filter would read `verbose` as a target at `trace`.
        if let Some(word) = spec
            .split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .find(|part| !part.contains('=') && part.parse::<log::LevelFilter>().is_err())
        {
            return Err(format!("`{spec}`: `{word}` is not a level ({expected})"));
        }
        let mut builder = env_filter::Builder::new();
        builder
            .try_parse(spec)
            .map_err(|error| format!("`{spec}`: {error} ({expected})"))?;
        Ok(Self {
            spec: spec.into(),
            filter: Arc::new(builder.build()),
        })
    }
}

impl fmt::Debug for LogFilter {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.spec)
    }
}

impl fmt::Display for LogFilter {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.spec)
    }
}

/// The `log` crate's level of a slog level.
pub(crate) fn log_level(level: Level) -> log::Level {
    match level {
        Level::Critical | Level::Error => log::Level::Error,
        Level::Warning => log::Level::Warn,
        Level::Info => log::Level::Info,
        Level::Debug => log::Level::Debug,
        Level::Trace => log::Level::Trace,
    }
}

/// A drain that passes the records [`LogFilter`] lets through, by their tag or module path.
pub(crate) struct FilterDrain<D> {
    /// Where the records that pass go.
    pub(crate) inner: D,
    /// The directives.
    pub(crate) filter: LogFilter,
}

impl<D: Drain> Drain for FilterDrain<D> {
    type Ok = Option<D::Ok>;
    type Err = D::Err;

    fn log(&self, record: &Record<'_>, values: &OwnedKVList) -> Result<Self::Ok, Self::Err> {
        let target = match record.tag() {
            "" => record.module(),
            tag => tag,
        };
        if self.filter.enabled(target, log_level(record.level())) {
            self.inner.log(record, values).map(Some)
        } else {
            Ok(None)
        }
    }

    fn is_enabled(&self, level: Level) -> bool {
        log_level(level) <= self.filter.max_level() && self.inner.is_enabled(level)
    }
}

/// How log lines are written to stdout (`LOG_FORMAT`).
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Text when stdout is a terminal, JSON otherwise.
    #[default]
    Auto,
    /// One JSON object per line (log collectors, files, pipes).
    Json,
    /// A compact, coloured line for people at a terminal.
    Text,
}

impl LogFormat {
    /// Whether lines go out as text: `Text`, or `Auto` on a terminal.
    pub fn is_text(self) -> bool {
        match self {
            Self::Auto => std::io::stdout().is_terminal(),
            Self::Json => false,
            Self::Text => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(spec: &str) -> LogFilter {
        spec.parse().expect("a valid filter")
    }

    #[test]
    fn a_target_directive_overrides_the_default_for_that_target_and_below() {
        let filter = filter("info,sqlx=warn,users_service::routes=debug");
        assert!(filter.enabled("gateway::proxy", log::Level::Info));
        assert!(!filter.enabled("gateway::proxy", log::Level::Debug));
        assert!(!filter.enabled("sqlx::query", log::Level::Info));
        assert!(filter.enabled("sqlx::query", log::Level::Warn));
        assert!(filter.enabled("users_service::routes", log::Level::Debug));
        assert!(!filter.enabled("users_service::session", log::Level::Debug));
        assert_eq!(filter.max_level(), log::LevelFilter::Debug);
    }

    #[test]
    fn plain_levels_keep_their_meaning_and_empty_means_info() {
        assert!(!filter("warn").enabled("anything", log::Level::Info));
        assert!(filter("WARN").enabled("anything", log::Level::Warn));
        assert!(filter("").enabled("anything", log::Level::Info));
        assert!(!filter("").enabled("anything", log::Level::Debug));
        assert!(!filter("off").enabled("anything", log::Level::Error));
    }

    #[test]
    fn bad_filters_are_refused_with_the_expected_form() {
        for bad in ["loud", "info,sqlx=loud", "sqlx=warn=info", "info/regex"] {
            let error = bad.parse::<LogFilter>().expect_err(bad);
            assert!(error.contains("info,sqlx=warn"), "{bad}: {error}");
        }
    }

    #[test]
    fn the_drain_filters_records_by_their_module() {
        let written = Arc::new(std::sync::Mutex::new(Vec::new()));
        struct Collect(Arc<std::sync::Mutex<Vec<String>>>);
        impl Drain for Collect {
            type Ok = ();
            type Err = slog::Never;
            fn log(&self, record: &Record<'_>, _: &OwnedKVList) -> Result<(), slog::Never> {
                self.0.lock().expect("lock").push(record.msg().to_string());
                Ok(())
            }
        }
        let own_module = module_path!();
        let drain = FilterDrain {
            inner: Collect(written.clone()),
            filter: filter(&format!("warn,{own_module}=debug")),
        };
        let logger = slog::Logger::root(drain.ignore_res(), slog::o!());
        slog::debug!(logger, "kept");
        slog::trace!(logger, "dropped");
        let quiet = slog::Logger::root(
            FilterDrain {
                inner: Collect(written.clone()),
                filter: filter("warn,sqlx=debug"),
            }
            .ignore_res(),
            slog::o!(),
        );
        slog::info!(quiet, "dropped too");
        slog::warn!(quiet, "kept too");
        let tagged = slog::Logger::root(
            FilterDrain {
                inner: Collect(written.clone()),
                filter: filter(&format!("warn,access=info,{own_module}=error")),
            }
            .ignore_res(),
            slog::o!(),
        );
        slog::info!(tagged, # "access", "tag decides");
        slog::warn!(tagged, "module decides");
        assert_eq!(
            *written.lock().expect("lock"),
            ["kept", "kept too", "tag decides"]
        );
    }
}
