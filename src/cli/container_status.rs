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

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn view(state: Status, mounted: bool, exit_code: Option<i32>) -> ContainerView {
        ContainerView {
            id: "c".repeat(64),
            name: "c".into(),
            image: "r:a".into(),
            image_id: strata::id::ImageId::new(strata::digest::Digest::of(b"cfg")),
            created: "2026-01-01T00:00:00Z".into(),
            mounted,
            merged: PathBuf::new(),
            upper: PathBuf::new(),
            work: PathBuf::new(),
            lower: vec![],
            state,
            exit_code,
            pid: 0,
            started_at: "2026-01-01T00:00:00Z".into(),
            finished_at: "2026-01-01T00:00:10Z".into(),
        }
    }

    #[test]
    fn states_and_docker_statuses() {
        let now = units::parse_rfc3339("2026-01-01T00:02:10Z").unwrap();
        let created = view(Status::Created, false, None);
        assert_eq!(
            (state(&created), status(&created, now)),
            ("created".into(), "Created".into())
        );
        assert_eq!(state(&view(Status::Created, true, None)), "mounted");
        let running = view(Status::Running, true, None);
        assert_eq!(state(&running), "running");
        assert_eq!(status(&running, now), "Up 2 minutes");
        let exited = view(Status::Exited, true, Some(1));
        assert_eq!(state(&exited), "exited (1)");
        assert_eq!(status(&exited, now), "Exited (1) 2 minutes ago");
        let unknown = view(Status::Exited, false, None);
        assert_eq!(state(&unknown), "exited (unknown)");
    }
}
