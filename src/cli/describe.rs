//! How an error is printed: its message and causes on one line.

/// The error and its causes, skipping causes whose text a higher level already includes.
pub fn describe(e: &anyhow::Error) -> String {
    let mut message = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
    }
    message
}
