//! How the library's `tracing` events reach the terminal: events at the chosen level
//! (`--log-level`, else `RUST_LOG`'s, else WARN) and above are printed on stderr as
//! `warning: <message>` (`error: `, `info: `, `debug: `, `trace: `); lower levels are dropped.

use std::fmt;

use clap::ValueEnum;

use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// `--log-level` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    /// Errors only
    Error,
    /// Warnings and errors (the default)
    Warn,
    /// What strata decides: layers present or fetched, mount method, pull outcome
    Info,
    /// Registry requests and retries too
    Debug,
    /// Everything
    Trace,
}

impl From<LogLevel> for Level {
    fn from(level: LogLevel) -> Self {
        match level {
            LogLevel::Error => Level::ERROR,
            LogLevel::Warn => Level::WARN,
            LogLevel::Info => Level::INFO,
            LogLevel::Debug => Level::DEBUG,
            LogLevel::Trace => Level::TRACE,
        }
    }
}

/// Installs the stderr subscriber for the whole process at `level`, else `RUST_LOG`'s, else
/// WARN; a no-op when one is set already.
pub fn init(level: Option<LogLevel>) {
    let env = std::env::var("RUST_LOG").ok();
    let max = level
        .map(Level::from)
        .or_else(|| env.as_deref().and_then(level_of_rust_log))
        .unwrap_or(Level::WARN);
    // Fails only when a global subscriber exists, which then stays in charge.
    let _ = tracing::subscriber::set_global_default(Stderr { max });
}

/// The level `RUST_LOG` asks of strata: its plain level (`debug`) or its `strata` target's
/// (`strata=debug`, `strata::pull=info`); other targets' directives are ignored, the most
/// verbose of the rest wins.
fn level_of_rust_log(value: &str) -> Option<Level> {
    value
        .split(',')
        .filter_map(|directive| match directive.trim().split_once('=') {
            None => Some(directive.trim()),
            Some((target, level)) if target == "strata" || target.starts_with("strata::") => {
                Some(level)
            }
            Some(_) => None,
        })
        .filter_map(|level| level.parse::<Level>().ok())
        .max()
}

/// Prints events at `max` and above; keeps no spans.
struct Stderr {
    max: Level,
}

impl Subscriber for Stderr {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        *metadata.level() <= self.max
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(LevelFilter::from_level(self.max))
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        // Spans are not shown; every span gets the same (valid, non-zero) id.
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        if self.enabled(event.metadata()) {
            eprintln!("{}", line(event));
        }
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

/// The line printed for an event.
fn line(event: &Event<'_>) -> String {
    let prefix = match *event.metadata().level() {
        Level::ERROR => "error",
        Level::WARN => "warning",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    };
    let mut message = Message::default();
    event.record(&mut message);
    format!("{prefix}: {}", message.0)
}

/// Collects an event's `message` field, then its other fields as ` key=value`.
#[derive(Default)]
struct Message(String);

impl Visit for Message {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.record_debug(field, &format_args!("{value}"));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        use fmt::Write as _;
        let _ = if field.name() == "message" {
            write!(self.0, "{value:?}")
        } else {
            write!(self.0, " {}={value:?}", field.name())
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Records the lines [`line`] makes, as the stderr subscriber at `max` would print them.
    #[derive(Clone)]
    struct Lines(Arc<Mutex<Vec<String>>>, Level);

    impl Default for Lines {
        fn default() -> Self {
            Lines(Arc::default(), Level::WARN)
        }
    }

    impl Subscriber for Lines {
        fn enabled(&self, metadata: &Metadata<'_>) -> bool {
            Stderr { max: self.1 }.enabled(metadata)
        }
        fn new_span(&self, _: &Attributes<'_>) -> Id {
            Id::from_u64(1)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, event: &Event<'_>) {
            if self.enabled(event.metadata()) {
                self.0.lock().unwrap().push(line(event));
            }
        }
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }

    #[test]
    fn a_lower_level_shows_debug_events_with_their_prefix() {
        let lines = Lines(Arc::default(), Level::DEBUG);
        tracing::subscriber::with_default(lines.clone(), || {
            tracing::debug!(attempt = 2, "GET /v2/");
            tracing::trace!("not shown");
        });
        assert_eq!(*lines.0.lock().unwrap(), ["debug: GET /v2/ attempt=2"]);
    }

    #[test]
    fn rust_log_gives_its_plain_level_or_strata_s() {
        assert_eq!(level_of_rust_log("debug"), Some(Level::DEBUG));
        assert_eq!(
            level_of_rust_log("hyper=trace,strata=info"),
            Some(Level::INFO)
        );
        assert_eq!(level_of_rust_log("strata::pull=debug"), Some(Level::DEBUG));
        assert_eq!(level_of_rust_log("hyper=trace"), None);
        assert_eq!(level_of_rust_log(""), None);
    }

    #[test]
    fn warnings_are_printed_as_before_and_lower_levels_dropped() {
        let lines = Lines::default();
        tracing::subscriber::with_default(lines.clone(), || {
            let base = "http://127.0.0.1:1";
            tracing::warn!("mirror {base} failed: connection refused; trying the next endpoint");
            tracing::info!("not shown");
            tracing::debug!("not shown either");
            tracing::error!(code = 7, "broken");
        });
        assert_eq!(
            *lines.0.lock().unwrap(),
            [
                "warning: mirror http://127.0.0.1:1 failed: connection refused; trying the next endpoint",
                "error: broken code=7",
            ]
        );
    }
}
