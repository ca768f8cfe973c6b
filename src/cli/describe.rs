//! How an error is printed: its message and causes on one line, then what to do about it.

use super::{container_hints, hints, privilege_hints, store_hints};

/// The error and its causes, skipping causes whose text a higher level already includes, with
/// the command-line hint for a registry, container or mount error.
pub fn describe(e: &anyhow::Error) -> String {
    let mut message = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
    }
    let message = store_hints::no_space(message, e);
    let mut message = hints::add(message, e);
    if let Some(hint) = container_hints::hint(e) {
        message.push_str(&hint);
    }
    if let Some(hint) = privilege_hints::hint(e) {
        message.push_str(&hint);
    }
    if let Some(hint) = store_hints::hint(e) {
        message.push_str(&hint);
    }
    message
}
