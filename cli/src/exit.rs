//! The documented exit statuses (see `redlock --help`), and the one line printed with each
//! failure.

use std::io::Write;
use std::process::ExitCode;

use redlock_cluster::LockError;

/// Bad arguments: unknown option, bad duration, empty resource, no nodes (sysexits' `EX_USAGE`).
pub const USAGE: u8 = 64;
/// Too few nodes answered to decide (sysexits' `EX_UNAVAILABLE`).
pub const UNAVAILABLE: u8 = 69;
/// A failure of redlock itself (sysexits' `EX_SOFTWARE`).
pub const INTERNAL: u8 = 70;
/// `run`: the lock was not obtained within `--wait` (sysexits' `EX_TEMPFAIL`: try again later).
pub const NOT_OBTAINED: u8 = 75;
/// `run`: the lock was lost while the command ran; the command was stopped.
pub const LOST: u8 = 76;
/// `run`: `--max-hold` was reached; the command was stopped (as `timeout` exits).
pub const MAX_HOLD: u8 = 124;
/// `run`: the command exists but could not be started.
pub const CANNOT_EXECUTE: u8 = 126;
/// `run`: the command was not found.
pub const NOT_FOUND: u8 = 127;
/// `health`: a finding is DANGER.
pub const DANGER: u8 = 1;

/// How the process ends: a status, and the line for stderr if it failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    /// The exit status.
    pub code: u8,
    /// One line saying what went wrong (printed as `redlock: {message}`).
    pub message: Option<String>,
}

impl Exit {
    /// Success, or the command's own status: nothing to print.
    pub fn status(code: u8) -> Exit {
        Exit {
            code,
            message: None,
        }
    }

    /// A failure with its line.
    pub fn fail(code: u8, message: impl Into<String>) -> Exit {
        Exit {
            code,
            message: Some(message.into()),
        }
    }

    /// What clap refused, as one line (its first, without the `error: ` prefix) and
    /// [`USAGE`]; `--help` and `--version` are printed in full and exit 0.
    pub fn from_clap(error: &clap::Error) -> Exit {
        use clap::error::ErrorKind;
        if matches!(
            error.kind(),
            ErrorKind::DisplayHelp
                | ErrorKind::DisplayVersion
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
        ) {
            // Printing can only fail on a closed stdout; nothing better to do then.
            let _ = error.print();
            let code = if error.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                USAGE
            } else {
                0
            };
            return Exit::status(code);
        }
        // clap's message runs until the usage block; its lines (the message, the missing
        // arguments, a tip) become one.
        let text = error.to_string();
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .take_while(|line| !line.starts_with("Usage:") && !line.starts_with("For more"))
            .filter(|line| !line.is_empty())
            .collect();
        let mut joined = String::new();
        for line in lines {
            if !joined.is_empty() {
                joined.push_str(if joined.ends_with(':') { " " } else { "; " });
            }
            joined.push_str(line);
        }
        let first = joined.strip_prefix("error: ").unwrap_or(&joined);
        let first = if first.is_empty() {
            "invalid arguments"
        } else {
            first
        };
        Exit::fail(USAGE, format!("{first} (see redlock --help)"))
    }

    /// A library error: invalid input is [`USAGE`], anything else is the nodes' fault and
    /// [`UNAVAILABLE`].
    pub fn from_lock_error(error: &LockError) -> Exit {
        let code = if error.is_invalid_input() {
            USAGE
        } else {
            UNAVAILABLE
        };
        Exit::fail(code, one_line(&error.to_string()))
    }

    /// The process's exit code, after printing the message.
    pub fn report(self) -> ExitCode {
        if let Some(message) = &self.message {
            say(message);
        }
        ExitCode::from(self.code)
    }
}

/// `redlock: {line}` on stderr. A closed or broken stderr is ignored (`eprintln!` would panic).
pub fn say(line: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "redlock: {line}");
}

/// `text` on stdout. A closed pipe (`redlock status | head -1`) is ignored (`print!` would
/// panic).
pub fn print(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

/// `text` on one line: line breaks become `; `.
pub fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_distinct() {
        let mut all = [
            USAGE,
            UNAVAILABLE,
            INTERNAL,
            NOT_OBTAINED,
            LOST,
            MAX_HOLD,
            CANNOT_EXECUTE,
            NOT_FOUND,
        ];
        all.sort_unstable();
        assert!(all.windows(2).all(|w| w[0] != w[1]));
    }

    #[test]
    fn invalid_input_is_a_usage_error() {
        let error = LockError::InvalidResource("empty".into());
        assert_eq!(Exit::from_lock_error(&error).code, USAGE);
        let error = LockError::Topology("no seed answered".into());
        assert_eq!(Exit::from_lock_error(&error).code, UNAVAILABLE);
    }

    #[test]
    fn messages_are_one_line() {
        assert_eq!(one_line("a\n\n  b \n"), "a; b");
    }
}
