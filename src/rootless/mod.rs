//! Rootless strata: an unprivileged user with subordinate ids pulls, mounts and runs in a user
//! namespace that maps them to 0 and their `/etc/subuid` / `/etc/subgid` ranges to 1..N.
//!
//! A pause process ([`pause`]) creates the user namespace and a mount namespace owned by it,
//! gets its maps from newuidmap/newgidmap, and sleeps, keeping both alive; every rootless
//! command joins them with `setns` ([`enter`]), so mounts made by one command are seen by the
//! next and by `strata unshare`. The store is the user's ([`data_root`]); the pause process's
//! pid file and lock live in [`state_dir`].

mod error;
pub mod ids;
mod join;
mod mode;
mod paths;
pub mod pause;

pub use error::RootlessError;
pub use ids::{IdMaps, IdRange};
pub use join::{PID_FILE, current_state_dir, enter, running_pause};
pub use mode::{Mode, ROOTLESS_GID_ENV, ROOTLESS_UID_ENV, is_rootless, mode};
pub use paths::{data_root, state_dir};
