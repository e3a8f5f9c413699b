//! A holder paused past its validity: a child process takes the lock, is stopped with
//! SIGSTOP until its validity is over, another client takes the lock and writes, and the
//! child, resumed, writes as if it still held the lock (the write it was about to make when it
//! froze). With fencing on, the protected store (the script of `examples/fencing.rs`) refuses
//! the late write; without fencing it lands. Redlock cannot prevent this (see design.md,
//! "Known limits"); fencing is the fix, and this measures both.
//!
//! The child is this test binary run again with [`CHILD_ENV`] set, executing only
//! [`child_main`] (the test `paused_holder_child`), so it is a real separate process.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use redlock_cluster::LockManager;
use redlock_harness::{Standalone, raw_async};

use super::record::{Attempt, Outcome, Run};
use super::report::Report;
use super::workload::{TTL, lock_config};

/// Set in the child's environment: run the holder's side.
pub const CHILD_ENV: &str = "REDLOCK_PAUSED_HOLDER";
const URLS_ENV: &str = "REDLOCK_PAUSED_HOLDER_URLS";
const STORE_ENV: &str = "REDLOCK_PAUSED_HOLDER_STORE";
const FENCING_ENV: &str = "REDLOCK_PAUSED_HOLDER_FENCING";
const RESOURCE_ENV: &str = "REDLOCK_PAUSED_HOLDER_RESOURCE";
/// The name of the test that runs [`child_main`].
pub const CHILD_TEST: &str = "paused_holder_child";

/// The protected store's script (`examples/fencing.rs`): refuses a token lower than the
/// highest seen.
const FENCED_INCR: &str = r"
local seen = tonumber(redis.call('GET', KEYS[2]) or '0')
if tonumber(ARGV[1]) < seen then
  return redis.error_reply('STALE token ' .. ARGV[1] .. ' < ' .. seen)
end
redis.call('SET', KEYS[2], ARGV[1])
return redis.call('INCR', KEYS[1])
";

/// One write to the store: through the fencing script with `token`, or a plain `INCR`.
async fn store_write(
    store: &mut redis::aio::MultiplexedConnection,
    resource: &str,
    token: Option<u64>,
) -> Result<i64, String> {
    let counter = format!("paused:{resource}:counter");
    match token {
        Some(token) => redis::Script::new(FENCED_INCR)
            .key(&counter)
            .key(format!("{counter}:token"))
            .arg(token)
            .invoke_async(store)
            .await
            .map_err(|e| e.to_string()),
        None => redis::cmd("INCR")
            .arg(&counter)
            .query_async(store)
            .await
            .map_err(|e| e.to_string()),
    }
}

/// The holder's side, in the child process: take the lock, say so, wait for the go (it is
/// stopped meanwhile), then write as if still holding it.
pub async fn child_main() {
    if std::env::var(CHILD_ENV).is_err() {
        return;
    }
    let env = |name: &str| std::env::var(name).expect(name);
    let urls: Vec<String> = env(URLS_ENV).split(',').map(str::to_owned).collect();
    let fencing = env(FENCING_ENV) == "1";
    let resource = env(RESOURCE_ENV);
    let mut store = raw_async(&env(STORE_ENV)).await.expect("store");
    let manager = LockManager::connect(&urls, lock_config().fencing(fencing))
        .await
        .expect("manager");
    let lock = manager
        .try_acquire(&resource, TTL)
        .await
        .expect("acquire")
        .expect("the free lock is granted");
    println!("HOLDER granted {}", lock.fencing_token().unwrap_or(0));
    std::io::stdout().flush().expect("stdout");
    let mut go = String::new();
    tokio::task::spawn_blocking(move || std::io::stdin().read_line(&mut go))
        .await
        .expect("stdin thread")
        .expect("stdin");
    // The write it was about to make when it froze (it checked validity before the pause).
    let written = store_write(&mut store, &resource, lock.fencing_token()).await;
    match written {
        Ok(_) => println!("HOLDER wrote accepted"),
        Err(e) => println!("HOLDER wrote refused {e}"),
    }
    std::io::stdout().flush().expect("stdout");
}

/// Releases `lock`, whatever the outcome (its keys expire anyway). Takes `&mut Lock`, what
/// `LockManager::release` takes on main; it coerces to the `&Lock` of this branch.
async fn release(manager: &LockManager, lock: &mut redlock_cluster::Lock) {
    let _ = manager.release(lock).await;
}

/// The child process and what follows `HOLDER ` in the lines of its stdout.
struct Holder {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Holder {
    fn spawn(urls: &[String], store: &str, fencing: bool, resource: &str) -> Self {
        let mut child = Command::new(std::env::current_exe().expect("test binary"))
            .args(["--exact", CHILD_TEST, "--nocapture", "--test-threads", "1"])
            .env(CHILD_ENV, "1")
            .env(URLS_ENV, urls.join(","))
            .env(STORE_ENV, store)
            .env(FENCING_ENV, if fencing { "1" } else { "0" })
            .env(RESOURCE_ENV, resource)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("holder process");
        let stdout = child.stdout.take().expect("stdout");
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // libtest prints "test paused_holder_child ... " on the same line as the
                // child's first line.
                if let Some(at) = line.find("HOLDER ") {
                    let _ = send.send(line[at + "HOLDER ".len()..].to_owned());
                }
            }
        });
        Holder { child, lines }
    }

    fn next(&self, what: &str) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("the holder process never said {what}: {e}"))
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    fn go(&mut self) {
        let stdin = self.child.stdin.as_mut().expect("stdin");
        stdin.write_all(b"go\n").expect("go");
        stdin.flush().expect("flush");
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `rounds` times: the child takes the lock and is stopped past its validity, the parent takes
/// the lock and writes, the child resumes and writes late. Returns the report (the child's
/// accepted late writes show as overlaps: it acted while another held the lock) and the count
/// of stale writes accepted.
pub async fn paused_holder(
    backend: &str,
    urls: Vec<String>,
    fencing: bool,
    rounds: usize,
) -> (Report, usize) {
    let store = Standalone::start(1).expect("store redis");
    let store_url = store.urls()[0].clone();
    let mut store_con = raw_async(&store_url).await.expect("store");
    let parent = LockManager::connect(&urls, lock_config().fencing(fencing))
        .await
        .expect("manager");
    let mut attempts = Vec::new();
    let mut stale_accepted = 0;
    for round in 0..rounds {
        let resource = format!("faults/paused-{round}");
        let requested = Instant::now();
        let mut holder = Holder::spawn(&urls, &store_url, fencing, &resource);
        let granted = holder.next("granted");
        let held_from = Instant::now();
        let token: u64 = granted
            .strip_prefix("granted ")
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("unexpected: {granted}"));
        holder.signal("STOP");
        // Past the holder's validity (and the keys' TTL on every voter).
        tokio::time::sleep(TTL + Duration::from_millis(300)).await;
        let second_requested = Instant::now();
        let mut second = None;
        for _ in 0..20 {
            if let Some(lock) = parent.try_acquire(&resource, TTL).await.expect("acquire") {
                second = Some(lock);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut second = second.expect("the paused holder's lock expired: the parent gets it");
        let second_from = Instant::now();
        if fencing {
            let (first, later) = (token, second.fencing_token().expect("a fencing token"));
            assert!(
                later > first,
                "fencing tokens must grow: {first} then {later}"
            );
        }
        store_write(&mut store_con, &resource, second.fencing_token())
            .await
            .expect("the current holder's write is accepted");
        holder.signal("CONT");
        holder.go();
        let wrote = holder.next("wrote");
        let late = Instant::now();
        let accepted = wrote == "wrote accepted";
        eprintln!("round {round} (fencing {fencing}): the resumed holder's late write: {wrote}");
        if accepted {
            stale_accepted += 1;
        }
        release(&parent, &mut second).await;
        attempts.push(Attempt {
            client: 0,
            resource: 0,
            requested,
            returned: held_from,
            outcome: if accepted {
                // It acted until its late write: that interval overlaps the next holder's.
                Outcome::Section {
                    end: late,
                    votes: 0,
                }
            } else {
                Outcome::Abandoned
            },
        });
        attempts.push(Attempt {
            client: 1,
            resource: 0,
            requested: second_requested,
            returned: second_from,
            outcome: Outcome::Section {
                end: Instant::now().min(second.validity_deadline()),
                votes: second.granted_by().len(),
            },
        });
        // Next round only after this one's holds are over.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let run = Run {
        attempts,
        counters: None,
    };
    let scenario = if fencing {
        "paused holder (SIGSTOP past its validity), fencing on"
    } else {
        "paused holder (SIGSTOP past its validity), no fencing"
    };
    let report = Report::of(backend, scenario, 2, &run);
    report.print();
    eprintln!("{backend} / {scenario}: {stale_accepted} of {rounds} stale writes accepted");
    (report, stale_accepted)
}
