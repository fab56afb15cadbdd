//! The collection floor of SPEC §11: one read of `/proc/[pid]/stat` for every pid, every
//! interval, and nothing else. `scripts/bench-daemon.sh` runs it beside the daemon.
//!
//! Usage: stat_floor [INTERVAL_MS] [SECONDS]

fn main() {
    let mut args = std::env::args().skip(1);
    let interval_ms: u64 = args.next().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let seconds: u64 = args.next().and_then(|v| v.parse().ok()).unwrap_or(60);
    let start = std::time::Instant::now();
    let mut buf = Vec::with_capacity(1024);
    let mut k = 1;
    while start.elapsed().as_secs() < seconds {
        let n = hogtrap::collect::linux::procfs::read_every_stat_once(&mut buf);
        std::hint::black_box(n);
        let due = start + std::time::Duration::from_millis(interval_ms * k);
        k += 1;
        if let Some(wait) = due.checked_duration_since(std::time::Instant::now()) {
            std::thread::sleep(wait);
        }
    }
}
