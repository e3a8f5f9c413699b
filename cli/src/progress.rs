//! The line that shows a long wait on a terminal: who holds the lock, how long it has left,
//! how long we waited. Nothing at all when stderr is not a terminal (cron, pipes, tests).

use std::io::{IsTerminal, Write};
use std::time::Duration;

/// A status line on stderr, rewritten in place.
#[derive(Debug)]
pub struct Progress {
    /// Whether stderr is a terminal.
    enabled: bool,
    /// Whether a line is on screen (to clear it before anything else is printed).
    shown: bool,
}

impl Progress {
    /// A status line if stderr is a terminal, else nothing.
    pub fn on_terminal() -> Progress {
        Progress {
            enabled: std::io::stderr().is_terminal(),
            shown: false,
        }
    }

    /// Replace the line with `text`.
    pub fn show(&mut self, text: &str) {
        if !self.enabled {
            return;
        }
        let mut stderr = std::io::stderr().lock();
        // A terminal that went away is no reason to fail the wait.
        let _ = write!(stderr, "\r\x1b[2K{text}");
        let _ = stderr.flush();
        self.shown = true;
    }

    /// Remove the line, if one is shown.
    pub fn clear(&mut self) {
        if self.shown {
            let mut stderr = std::io::stderr().lock();
            let _ = write!(stderr, "\r\x1b[2K");
            let _ = stderr.flush();
            self.shown = false;
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.clear();
    }
}

/// The waiting line: `waiting for "r": held by 3f2a9c01, 12.3s left; waited 4s of 10s`.
pub fn waiting_line(
    resource: &str,
    holder: Option<&str>,
    left: Option<Duration>,
    waited: Duration,
    wait: Duration,
) -> String {
    let held = match (holder, left) {
        (Some(holder), Some(left)) if left != Duration::MAX => {
            format!("held by {}, {:.1}s left", short(holder), left.as_secs_f64())
        }
        (Some(holder), _) => format!("held by {}", short(holder)),
        (None, _) => "holder unknown (no quorum agreed on one)".to_string(),
    };
    format!(
        "redlock: waiting for {resource:?}: {held}; waited {}s of {}s",
        waited.as_secs(),
        wait.as_secs()
    )
}

/// The first 8 characters of a token: enough to tell holders apart on screen.
fn short(token: &str) -> &str {
    token.get(..8).unwrap_or(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_waiting_line_names_the_holder_and_the_time_left() {
        let line = waiting_line(
            "jobs/x",
            Some("0123456789abcdef"),
            Some(Duration::from_millis(12_340)),
            Duration::from_secs(4),
            Duration::from_secs(10),
        );
        assert_eq!(
            line,
            "redlock: waiting for \"jobs/x\": held by 01234567, 12.3s left; waited 4s of 10s"
        );
        let line = waiting_line("r", None, None, Duration::ZERO, Duration::from_secs(1));
        assert!(line.contains("holder unknown"), "{line}");
    }
}
