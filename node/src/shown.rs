//! Text from the network or from files, made safe to show in a log line or on a terminal.
//!
//! A device name, a file name, a peer's close reason: a stranger or a careless file system
//! chooses these bytes. Written as they are, a newline forges a whole log line ("… photo
//! safe") and an escape sequence rewrites the terminal. [`Shown`] writes every control
//! character (C0, DEL, C1), the line and paragraph separators and the bidirectional
//! overrides as a visible escape (`\n`, `\u{1b}`), and everything else as it is.

use std::fmt;

/// Untrusted text, escaped when displayed.
#[derive(Clone, Copy, Debug)]
pub struct Shown<'a>(pub &'a str);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_escaped(f, self.0, false)
    }
}

/// Writes `text` with every character [`Shown`] escapes escaped, except newlines when
/// `keep_newlines` (output of several lines this program wrote itself).
pub fn write_escaped(out: &mut dyn fmt::Write, text: &str, keep_newlines: bool) -> fmt::Result {
    let mut rest = text;
    while let Some(at) = rest.find(|c: char| needs_escape(c) && !(keep_newlines && c == '\n')) {
        out.write_str(&rest[..at])?;
        let c = rest[at..].chars().next().unwrap_or('\0');
        match c {
            '\n' => out.write_str("\\n")?,
            '\r' => out.write_str("\\r")?,
            '\t' => out.write_str("\\t")?,
            other => write!(out, "\\u{{{:x}}}", u32::from(other))?,
        }
        rest = &rest[at + c.len_utf8()..];
    }
    out.write_str(rest)
}

/// `text` as [`write_escaped`] writes it.
pub fn escaped(text: &str, keep_newlines: bool) -> String {
    let mut out = String::with_capacity(text.len());
    // Writing to a String cannot fail.
    let _ = write_escaped(&mut out, text, keep_newlines);
    out
}

/// How log lines write an event's fields: each escaped as [`Shown`] escapes, the message
/// bare and the others as `name=value`, so that whatever a peer or a file put in a field
/// stays on the event's one line.
pub fn log_fields() -> impl for<'w> tracing_subscriber::fmt::FormatFields<'w> + 'static {
    use tracing_subscriber::field::MakeExt as _;
    tracing_subscriber::fmt::format::debug_fn(|writer, field, value| {
        let text = escaped(&format!("{value:?}"), false);
        match field.name() {
            "message" => writer.write_str(&text),
            name => write!(writer, "{name}={text}"),
        }
    })
    .delimited(" ")
}

/// Whether a character may change what a reader sees beyond itself: a control character, a
/// line or paragraph separator, or a bidirectional formatting character.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_and_overrides_are_escaped_and_the_rest_kept() {
        let forged = "phone\n2026-12-06T10:00:00Z  INFO all photos safe\r\u{1b}[2J\u{9b}31m";
        let shown = Shown(forged).to_string();
        assert_eq!(
            shown,
            "phone\\n2026-12-06T10:00:00Z  INFO all photos safe\\r\\u{1b}[2J\\u{9b}31m"
        );
        assert!(!shown.chars().any(char::is_control));
        assert_eq!(
            Shown("photo\u{202e}gpj.exe").to_string(),
            "photo\\u{202e}gpj.exe"
        );
        // Names in any script, emoji and backslashes stay as they are.
        let plain = "Ólafur's 📷 Fotos/Ürlaub \\ 2026 – 東京";
        assert_eq!(Shown(plain).to_string(), plain);
        assert_eq!(escaped("a\tb\n", false), "a\\tb\\n");
    }

    #[test]
    fn a_log_event_stays_on_one_line() {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Captured(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Captured {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .fmt_fields(log_fields())
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .without_time()
            .finish();
        let reason = "bye\n2026-12-06T10:00:00Z  INFO photomesh: all photos are safe";
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(name = %"tab\tname", "refused a connection: {reason}");
        });
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(
            text.contains("refused a connection: bye\\n2026") && text.contains("name=tab\\tname"),
            "{text}"
        );
    }

    #[test]
    fn own_newlines_can_be_kept() {
        assert_eq!(escaped("one\ntwo\u{7}\n", true), "one\ntwo\\u{7}\n");
    }
}
