//! A container's state as `ps` prints it: the STATE column (`running`, `exited (1)`,
//! `mounted`, `created`) and Docker's STATUS (`Up 3 seconds`, `Exited (1) 2 minutes ago`,
//! `Created`).

use strata::container::{ContainerView, Status};

use super::units;

/// The STATE column: running, exited (CODE), or, never run, mounted or created.
pub fn state(view: &ContainerView) -> String {
    match view.state {
        Status::Running => "running".to_string(),
        Status::Exited => format!("exited ({})", exit_code(view)),
        Status::Created if view.mounted => "mounted".to_string(),
        Status::Created => "created".to_string(),
    }
}

/// Docker's STATUS: `Up 3 seconds`, `Exited (1) 2 minutes ago`, `Created`.
pub fn status(view: &ContainerView, now: i64) -> String {
    let since = |time: &str| units::parse_rfc3339(time).map(|t| units::human_duration(now - t));
    match view.state {
        Status::Running => match since(&view.started_at) {
            Some(up) => format!("Up {up}"),
            None => "Up".to_string(),
        },
        Status::Exited => match since(&view.finished_at) {
            Some(ago) => format!("Exited ({}) {ago} ago", exit_code(view)),
            None => format!("Exited ({})", exit_code(view)),
        },
        Status::Created => "Created".to_string(),
    }
}

fn exit_code(view: &ContainerView) -> String {
    view.exit_code
        .map_or_else(|| "unknown".to_string(), |c| c.to_string())
}
