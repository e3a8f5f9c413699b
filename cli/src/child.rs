//! The command run under the lock: started in a process group of its own with the lock's
//! environment, sent the signals redlock receives, stopped (SIGTERM, then SIGKILL after
//! `--kill-after`) when the lock is lost or `--max-hold` is reached.
//!
//! Why a process group of its own: a lost lock must stop the whole job, not only its first
//! process (`sh -c 'a; b'` would leave `b` running), and a terminal's Ctrl-C must reach the
//! command once (through redlock), not twice (from the terminal and from redlock). The price:
//! the group is not the terminal's foreground group, so a read from the terminal would stop it
//! (SIGTTIN) and redlock would wait for it forever. So a terminal on stdin is not passed on
//! (the command reads `/dev/null`), and every signal sent is followed by SIGCONT, as
//! `timeout(1)` does, so that a stopped command still gets it.

use std::ffi::OsString;
use std::io::{ErrorKind, IsTerminal};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use redlock_cluster::{LockGuard, LostReason};
use tokio::process::{Child, Command};
use tokio::signal::unix::{SignalKind, signal};

use crate::args::RunArgs;
use crate::exit::{self, Exit, one_line};

/// How long redlock waits for the command to be gone after SIGKILL.
const REAP_TIMEOUT: Duration = Duration::from_secs(5);

/// The signals redlock passes on to the command: SIGINT, SIGTERM, SIGHUP. Installed before the
/// lock is taken, so that a signal while waiting stops the wait cleanly instead of killing
/// redlock in the middle of an acquisition.
#[derive(Debug)]
pub struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
}

impl Signals {
    /// Take over SIGINT, SIGTERM and SIGHUP for the rest of the process.
    pub fn install() -> Result<Signals, Exit> {
        let listen = |kind: SignalKind| {
            signal(kind)
                .map_err(|e| Exit::fail(exit::INTERNAL, format!("cannot handle signals: {e}")))
        };
        Ok(Signals {
            interrupt: listen(SignalKind::interrupt())?,
            terminate: listen(SignalKind::terminate())?,
            hangup: listen(SignalKind::hangup())?,
        })
    }

    /// The next signal received, as its number. Cancel safe.
    pub async fn recv(&mut self) -> i32 {
        // `recv` returns `None` only once the signal driver is gone (runtime shutdown); such
        // a stream then waits forever, like a signal that never comes.
        tokio::select! {
            Some(()) = self.interrupt.recv() => Signal::SIGINT as i32,
            Some(()) = self.terminate.recv() => Signal::SIGTERM as i32,
            Some(()) = self.hangup.recv() => Signal::SIGHUP as i32,
            else => std::future::pending().await,
        }
    }
}

/// How the command ended.
enum End {
    /// It exited by itself.
    Exited(ExitStatus),
    /// The lock was lost (or `--max-hold` reached) first.
    Lost(LostReason),
}

/// Start the command with the lock held by `guard`, wait for it, release the lock.
pub async fn run_under(guard: LockGuard, args: &RunArgs, signals: &mut Signals) -> Exit {
    let mut child = match spawn(&guard, args) {
        Ok(child) => child,
        Err(exit) => {
            release(guard).await;
            return exit;
        }
    };
    let Some(pid) = child.id() else {
        release(guard).await;
        return Exit::fail(exit::INTERNAL, "the command has no process id");
    };
    let group = Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX));
    let end = loop {
        tokio::select! {
            // The command's end first: a command that exited as the lock was lost keeps its
            // own status.
            biased;
            status = child.wait() => match status {
                Ok(status) => break End::Exited(status),
                Err(error) => {
                    release(guard).await;
                    return Exit::fail(exit::INTERNAL, format!("cannot wait for the command: {error}"));
                }
            },
            reason = guard.lost() => break End::Lost(reason),
            signal = signals.recv() => send(group, signal),
        }
    };
    match end {
        End::Exited(status) => {
            release(guard).await;
            Exit::status(status_code(status))
        }
        End::Lost(reason) => {
            let (code, what) = match reason {
                LostReason::MaxHold(_) => (exit::MAX_HOLD, "--max-hold reached"),
                _ => (exit::LOST, "lock lost"),
            };
            exit::say(&format!(
                "{what} on {:?} ({reason}); stopping the command: SIGTERM, SIGKILL after {}",
                args.resource,
                humantime::format_duration(args.kill_after)
            ));
            stop(&mut child, group, args.kill_after, signals).await;
            // After a loss the keys are gone or unreachable: a failed release says nothing
            // new. After --max-hold the lock is still held, and a failure is worth a line.
            if code == exit::MAX_HOLD {
                release(guard).await;
            } else {
                let _ = guard.release().await;
            }
            Exit::fail(
                code,
                format!("{what} on {:?}; the command was stopped", args.resource),
            )
        }
    }
}

/// Start the command in a process group of its own, with the lock's environment.
fn spawn(guard: &LockGuard, args: &RunArgs) -> Result<Child, Exit> {
    let Some((program, rest)) = args.command.split_first() else {
        return Err(Exit::fail(exit::USAGE, "no command given after `--`"));
    };
    let mut command = Command::new(program);
    if std::io::stdin().is_terminal() {
        command.stdin(Stdio::null());
    }
    command
        .args(rest)
        .env("REDLOCK_RESOURCE", &args.resource)
        .env("REDLOCK_TOKEN", guard.token().as_str())
        .process_group(0);
    match guard.fencing_token() {
        Some(token) => command.env("REDLOCK_FENCING_TOKEN", token.to_string()),
        None => command.env_remove("REDLOCK_FENCING_TOKEN"),
    };
    command.spawn().map_err(|error| {
        let code = match error.kind() {
            ErrorKind::NotFound => exit::NOT_FOUND,
            _ => exit::CANNOT_EXECUTE,
        };
        Exit::fail(code, format!("cannot run {}: {error}", show(program)))
    })
}

/// SIGTERM to the command's group, SIGKILL after `grace` if the command still runs; signals
/// received meanwhile are passed on. Waits (bounded) for the command to be gone.
async fn stop(child: &mut Child, group: Pid, grace: Duration, signals: &mut Signals) {
    send(group, Signal::SIGTERM as i32);
    let deadline = tokio::time::Instant::now() + grace;
    loop {
        tokio::select! {
            _ = child.wait() => return,
            () = tokio::time::sleep_until(deadline) => break,
            signal = signals.recv() => send(group, signal),
        }
    }
    send(group, Signal::SIGKILL as i32);
    if tokio::time::timeout(REAP_TIMEOUT, child.wait())
        .await
        .is_err()
    {
        exit::say(&format!(
            "the command did not end {REAP_TIMEOUT:?} after SIGKILL"
        ));
    }
}

/// Send `signal` to the command's process group, then SIGCONT so that a stopped group gets it
/// too. A group that is gone already is fine.
fn send(group: Pid, signal: i32) {
    let Ok(signal) = Signal::try_from(signal) else {
        return;
    };
    let follow_up = (signal != Signal::SIGKILL).then_some(Signal::SIGCONT);
    for signal in std::iter::once(signal).chain(follow_up) {
        if let Err(error) = killpg(group, signal)
            && error != nix::errno::Errno::ESRCH
        {
            exit::say(&format!("cannot send {signal} to the command: {error}"));
        }
    }
}

/// Release the lock; a failure is reported but does not change the exit status (the keys
/// expire with their TTL).
async fn release(guard: LockGuard) {
    let resource = guard.resource();
    match guard.release().await {
        Ok(_) => {}
        Err(error) => exit::say(&format!(
            "releasing {resource:?} failed, its keys expire with their TTL: {}",
            one_line(&error.to_string())
        )),
    }
}

/// The status to exit with for the command's `status`: its code, or 128 + the signal that
/// killed it (as a shell reports it).
fn status_code(status: ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    if let Some(code) = status.code() {
        // Exit codes are 0..=255 on Unix.
        return u8::try_from(code & 0xff).unwrap_or(exit::INTERNAL);
    }
    match status.signal() {
        Some(signal) => u8::try_from(128 + signal).unwrap_or(exit::INTERNAL),
        None => exit::INTERNAL,
    }
}

/// A program name for a message.
fn show(program: &OsString) -> String {
    format!("{:?}", program.to_string_lossy())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn statuses_pass_through_and_signals_add_128() {
        // Wait statuses as waitpid reports them: code << 8, or the signal number.
        assert_eq!(status_code(ExitStatus::from_raw(0)), 0);
        assert_eq!(status_code(ExitStatus::from_raw(3 << 8)), 3);
        assert_eq!(status_code(ExitStatus::from_raw(255 << 8)), 255);
        assert_eq!(status_code(ExitStatus::from_raw(15)), 143);
        assert_eq!(status_code(ExitStatus::from_raw(9)), 137);
    }
}
