//! `docker pull`-style progress on stderr: bars on a terminal (without the bar when the
//! terminal is narrower than a line with it, as Docker), plain lines otherwise, with a line per
//! downloading layer at most every few seconds so that a long pull is not silent in a CI log.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use strata::pull::{Observer, PullEvent};

use super::units;

/// Columns a line with the bar takes (see [`style`]).
const LINE_WITH_BAR: usize = 12 + 2 + 16 + 1 + 30 + 1 + 9 + 1 + 9;

/// Seconds between two plain progress lines of a layer, unless `STRATA_PROGRESS_INTERVAL`
/// says otherwise.
const PLAIN_INTERVAL_SECS: f64 = 5.0;

/// Renders pull events; `finish` clears what needs clearing.
pub struct Progress {
    mode: Mode,
}

enum Mode {
    Quiet,
    Plain {
        /// Least time between two `Downloading` lines of a layer.
        interval: Duration,
        /// When each downloading layer's last line was printed (or its download started).
        last: Mutex<HashMap<String, Instant>>,
    },
    Bars {
        multi: MultiProgress,
        bars: Mutex<HashMap<String, ProgressBar>>,
        /// Whether the terminal is wide enough for the bar.
        with_bar: bool,
    },
}

/// The observer for this terminal: bars when stderr is a tty, plain lines otherwise, or nothing.
pub fn observer(quiet: bool) -> Arc<Progress> {
    let mode = if quiet {
        Mode::Quiet
    } else if std::io::stderr().is_terminal() {
        let width = console::Term::stderr().size_checked().map(|(_, cols)| cols);
        Mode::Bars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            bars: Mutex::default(),
            with_bar: width.is_none_or(|cols| usize::from(cols) > LINE_WITH_BAR),
        }
    } else {
        Mode::Plain {
            interval: plain_interval(),
            last: Mutex::default(),
        }
    };
    Arc::new(Progress { mode })
}

impl Progress {
    /// Stops drawing.
    pub fn finish(&self) {
        if let Mode::Bars { bars, .. } = &self.mode
            && let Ok(bars) = bars.lock()
        {
            for bar in bars.values() {
                if !bar.is_finished() {
                    bar.abandon();
                }
            }
        }
    }
}

/// `STRATA_PROGRESS_INTERVAL` (seconds, fractions allowed), else [`PLAIN_INTERVAL_SECS`].
fn plain_interval() -> Duration {
    let secs = std::env::var("STRATA_PROGRESS_INTERVAL")
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .unwrap_or(PLAIN_INTERVAL_SECS);
    Duration::from_secs_f64(secs)
}

fn style(with_bar: bool) -> ProgressStyle {
    let template = if with_bar {
        "{prefix}: {msg:<16} {bar:30} {bytes:>9}/{total_bytes:<9}"
    } else {
        "{prefix}: {msg:<16} {bytes:>9}/{total_bytes:<9}"
    };
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

fn done_style() -> ProgressStyle {
    ProgressStyle::with_template("{prefix}: {msg}").unwrap_or_else(|_| ProgressStyle::default_bar())
}

impl Observer for Progress {
    fn event(&self, event: PullEvent) {
        match &self.mode {
            Mode::Quiet => {}
            Mode::Plain { interval, last } => match event {
                PullEvent::Resolved { reference, .. } => eprintln!("{}", pulling_from(&reference)),
                PullEvent::LayerExists { layer } => eprintln!("{}: Already exists", layer.short()),
                PullEvent::LayerDone { layer } => eprintln!("{}: Pull complete", layer.short()),
                PullEvent::Downloading { layer, done, total } => {
                    let Ok(mut last) = last.lock() else { return };
                    let now = Instant::now();
                    let due = match last.get(layer.hex()) {
                        // The first line comes one interval after the download started.
                        None => {
                            last.insert(layer.hex().to_string(), now);
                            false
                        }
                        Some(at) => done < total && now.duration_since(*at) >= *interval,
                    };
                    if due {
                        last.insert(layer.hex().to_string(), now);
                        eprintln!(
                            "{}: Downloading {}/{}",
                            layer.short(),
                            units::human_size(done),
                            units::human_size(total)
                        );
                    }
                }
                PullEvent::Extracting { .. } => {}
            },
            Mode::Bars {
                multi,
                bars,
                with_bar,
            } => {
                let Ok(mut bars) = bars.lock() else { return };
                match event {
                    PullEvent::Resolved { reference, layers } => {
                        let _ = multi.println(pulling_from(&reference));
                        for (layer, size) in layers {
                            let bar = multi.add(ProgressBar::new(size));
                            bar.set_style(style(*with_bar));
                            bar.set_prefix(layer.short().to_string());
                            bar.set_message("Waiting");
                            bars.insert(layer.hex().to_string(), bar);
                        }
                    }
                    PullEvent::LayerExists { layer } => {
                        finish(&bars, layer.hex(), "Already exists")
                    }
                    PullEvent::Downloading { layer, done, total } => {
                        if let Some(bar) = bars.get(layer.hex()) {
                            if bar.position() == 0 {
                                bar.set_message("Downloading");
                            }
                            bar.set_length(total);
                            bar.set_position(done);
                        }
                    }
                    PullEvent::Extracting { layer } => {
                        if let Some(bar) = bars.get(layer.hex()) {
                            bar.set_message("Extracting");
                        }
                    }
                    PullEvent::LayerDone { layer } => finish(&bars, layer.hex(), "Pull complete"),
                }
            }
        }
    }
}

/// Docker's first line: `latest: Pulling from library/alpine`, or by digest
/// `sha256:...: Pulling from library/alpine`.
fn pulling_from(reference: &strata::reference::Reference) -> String {
    let tag = match (&reference.tag, &reference.digest) {
        (Some(tag), _) => tag.clone(),
        (None, Some(digest)) => digest.to_string(),
        (None, None) => "latest".to_string(),
    };
    format!("{tag}: Pulling from {}", reference.repository)
}

fn finish(bars: &HashMap<String, ProgressBar>, key: &str, message: &'static str) {
    if let Some(bar) = bars.get(key) {
        bar.set_style(done_style());
        bar.finish_with_message(message);
    }
}
