//! How the library's `tracing` events reach the terminal: WARN (and ERROR) events are printed
//! on stderr as `warning: <message>` (`error: <message>`); lower levels are dropped.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// Installs the stderr subscriber for the whole process; a no-op when one is set already.
pub fn init() {
    // Fails only when a global subscriber exists, which then stays in charge.
    let _ = tracing::subscriber::set_global_default(Stderr);
}

/// Prints events at WARN and above; keeps no spans.
struct Stderr;

impl Subscriber for Stderr {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        *metadata.level() <= Level::WARN
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(LevelFilter::WARN)
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        // Spans are not shown; every span gets the same (valid, non-zero) id.
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        if let Some(line) = line(event) {
            eprintln!("{line}");
        }
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

/// The line printed for an event, or `None` for levels below WARN.
fn line(event: &Event<'_>) -> Option<String> {
    let prefix = match *event.metadata().level() {
        Level::ERROR => "error",
        Level::WARN => "warning",
        _ => return None,
    };
    let mut message = Message::default();
    event.record(&mut message);
    Some(format!("{prefix}: {}", message.0))
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

    /// Records the lines [`line`] makes, as the stderr subscriber would print them.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<String>>>);

    impl Subscriber for Lines {
        fn enabled(&self, metadata: &Metadata<'_>) -> bool {
            Stderr.enabled(metadata)
        }
        fn new_span(&self, _: &Attributes<'_>) -> Id {
            Id::from_u64(1)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, event: &Event<'_>) {
            if let Some(l) = line(event) {
                self.0.lock().unwrap().push(l);
            }
        }
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
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
