//! `docker pull`-style progress on stderr: bars on a terminal, plain lines otherwise.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use strata::pull::{Observer, PullEvent};

/// Renders pull events; `finish` clears what needs clearing.
pub struct Progress {
    mode: Mode,
}

enum Mode {
    Quiet,
    Plain,
    Bars {
        multi: MultiProgress,
        bars: Mutex<HashMap<String, ProgressBar>>,
    },
}

/// The observer for this terminal: bars when stderr is a tty, plain lines otherwise, or nothing.
pub fn observer(quiet: bool) -> Arc<Progress> {
    let mode = if quiet {
        Mode::Quiet
    } else if std::io::stderr().is_terminal() {
        Mode::Bars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            bars: Mutex::default(),
        }
    } else {
        Mode::Plain
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

fn style() -> ProgressStyle {
    ProgressStyle::with_template("{prefix}: {msg:<16} {bar:30} {bytes:>9}/{total_bytes:<9}")
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
            Mode::Plain => match event {
                PullEvent::Resolved { reference, .. } => eprintln!("{}", pulling_from(&reference)),
                PullEvent::LayerExists { layer } => eprintln!("{}: Already exists", layer.short()),
                PullEvent::LayerDone { layer } => eprintln!("{}: Pull complete", layer.short()),
                PullEvent::Downloading { .. } | PullEvent::Extracting { .. } => {}
            },
            Mode::Bars { multi, bars } => {
                let Ok(mut bars) = bars.lock() else { return };
                match event {
                    PullEvent::Resolved { reference, layers } => {
                        let _ = multi.println(pulling_from(&reference));
                        for (layer, size) in layers {
                            let bar = multi.add(ProgressBar::new(size));
                            bar.set_style(style());
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
