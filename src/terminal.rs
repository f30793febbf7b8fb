//! Text from outside (servers' error texts, node names and marks in a record) made safe to
//! print on a terminal: control characters become visible escapes, so a record cannot
//! move the cursor, retitle the window, clear the screen or colour a line.

use std::borrow::Cow;

/// At most the first `max` characters of `text`, [`printable`]: a server's text quoted
/// in an error.
pub fn excerpt(text: &str, max: usize) -> String {
    printable(&text.chars().take(max).collect::<String>()).into_owned()
}

/// `text` with every C0 control character but newline and tab, DEL, and every C1 control
/// character written as a visible escape (`\x1b`, `\x7f`, `\u{9b}`); borrowed when there
/// is none.
pub fn printable(text: &str) -> Cow<'_, str> {
    let unsafe_char = |c: char| c.is_control() && c != '\n' && c != '\t';
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if !unsafe_char(c) {
            out.push(c);
        } else if (c as u32) < 0x80 {
            out.push_str(&format!("\\x{:02x}", c as u32));
        } else {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_become_visible_and_plain_text_is_untouched() {
        let hostile = "\x1b]0;title\x07\x1b[2J\x1b[31mfake: every expectation holds\r\u{9b}31m\x7f";
        let shown = printable(hostile);
        assert!(!shown.chars().any(|c| c.is_control()), "{shown:?}");
        assert_eq!(
            shown,
            "\\x1b]0;title\\x07\\x1b[2J\\x1b[31mfake: every expectation holds\\x0d\\u{9b}31m\\x7f"
        );
        let plain = "n1\t12\ttimed out after 1s ×5\nnext line, ünïcode";
        assert!(matches!(printable(plain), Cow::Borrowed(_)));
        assert_eq!(printable(plain), plain);
    }
}
