//! Every thread the daemon needs is created at start, or the daemon does not start: under PID
//! exhaustion (a fork bomb filling `pid_max` or a pids cgroup) no part of it can be taken down
//! later by a thread it fails to create.
//!
//! Guarantees:
//! - Threads made at start: `sampler`, `recorder` (stores, rules, actions: the only thread
//!   of the two that waits for the store's disk), `retention`, `checkpoint`, `hogtrap-rules` (the Lua
//!   worker) and [`BLOCKING_THREADS`] threads of the async runtime's blocking pool (name
//!   lookups for SMTP), started here and kept for the life of the process instead of being
//!   created on demand and retired after 10 s idle as tokio does by default. A failure to
//!   create any of them stops the start with one line naming the thread.
//! - Made later, and what a failure does then: a replacement for a Lua worker the watchdog
//!   abandoned (the rules are skipped, and retried, at each pass until it starts; the sample is
//!   stored regardless); a SIGHUP reload of the rules, which loads them into a new Lua worker
//!   (refused and logged; the running rules stay); a rule's `exec` command (logged, not run); a desktop notification
//!   relay process (the alert stays in the outbox and is tried again). Sampling and storing
//!   never need a new thread or process.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use anyhow::Context;

/// Blocking-pool threads of the async runtime: lettre's SMTP transport resolves the relay's
/// name with `spawn_blocking`; two allow a slow lookup beside a second one.
pub const BLOCKING_THREADS: usize = 2;
/// tokio retires an idle blocking thread after this; "never" in practice.
const KEEP_ALIVE: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// getaddrinfo's needs with room to spare; the pages it touches stay locked.
const BLOCKING_STACK: usize = 512 << 10;

/// The runtime for signals and alert delivery, with its blocking threads already running.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(BLOCKING_THREADS)
        .thread_keep_alive(KEEP_ALIVE)
        .thread_stack_size(BLOCKING_STACK)
        .thread_name("async-blocking")
        .build()
        .context("cannot start the async runtime")?;
    let started = Arc::new((Mutex::new(0usize), Condvar::new()));
    for _ in 0..BLOCKING_THREADS {
        let started = started.clone();
        // Each task holds its thread until all have started, so each gets its own thread.
        let spawn = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            rt.spawn_blocking(move || {
                let (count, cv) = &*started;
                let mut n = count.lock().unwrap_or_else(|e| e.into_inner());
                *n += 1;
                cv.notify_all();
                while *n < BLOCKING_THREADS {
                    let (g, timeout) = cv
                        .wait_timeout(n, Duration::from_secs(5))
                        .unwrap_or_else(|e| e.into_inner());
                    n = g;
                    if timeout.timed_out() {
                        break;
                    }
                }
            })
        }));
        if spawn.is_err() {
            anyhow::bail!(
                "cannot start the async runtime's blocking threads (no thread could be created)"
            );
        }
    }
    let (count, cv) = &*started;
    let mut n = count.lock().unwrap_or_else(|e| e.into_inner());
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while *n < BLOCKING_THREADS {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            anyhow::bail!(
                "cannot start the async runtime's blocking threads: {} of {BLOCKING_THREADS} started (thread limit reached?)",
                *n
            );
        }
        n = cv
            .wait_timeout(n, left)
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
    Ok(rt)
}

/// The line for the health log at start.
pub fn started_line() -> String {
    format!(
        "threads: sampler, recorder, retention, checkpoint, rules worker and {BLOCKING_THREADS} async \
         blocking threads started; sampling and storing never create another"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pool's threads are running before any blocking task is spawned.
    #[test]
    fn blocking_threads_exist_before_they_are_needed() {
        let rt = runtime().unwrap();
        let named = std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|t| std::fs::read_to_string(t.unwrap().path().join("comm")).ok())
            .filter(|comm| comm.trim() == "async-blocking")
            .count();
        assert_eq!(named, BLOCKING_THREADS);
        drop(rt);
    }
}
