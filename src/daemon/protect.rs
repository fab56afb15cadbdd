//! Self-protection under distress (SPEC §10): lock memory, shield from the OOM killer, raise
//! CPU and I/O priority. Applied once, at start, before any thread exists (niceness and I/O
//! priority are per thread on Linux and inherited by threads created later). Each measure is
//! reported: applied, or why not. None of them failing stops the recorder.

use crate::config::{IoniceClass, Protect};
use crate::format::size::bytes;

/// Heap pre-faulted at start (and kept: the allocator is told not to give memory back), so a
/// pass under memory pressure reuses locked pages instead of asking the kernel for new ones
/// (direct reclaim). A pass at a few hundred processes uses a few MiB; the RSS bar (30 MiB
/// at 1,000 processes) leaves room for no more.
pub const PREFAULT_BYTES: usize = 4 << 20;

/// `MCL_ONFAULT` (Linux 4.4), not in the libc crate for every target.
const MCL_ONFAULT: libc::c_int = 4;

/// `mlockall(current)`, then `mlockall(future, on fault)` (a kernel before 4.4 refuses
/// `MCL_ONFAULT`: then `mlockall(future)`). Without CAP_IPC_LOCK the kernel allows RLIMIT_MEMLOCK
/// bytes: the soft limit is raised to the hard one first (no privilege needed for that), and
/// if that is still too little the line says so and the recorder runs unlocked.
fn lock_memory() -> String {
    let lim = crate::collect::linux::raise_soft_limit(libc::RLIMIT_MEMLOCK);
    let limit = if lim.rlim_cur == libc::RLIM_INFINITY {
        "unlimited".to_string()
    } else {
        bytes(lim.rlim_cur as f64)
    };
    // What is mapped now (the whole binary, its libraries, the heap so far) is locked and
    // made resident at once: every code path, the rare ones an incident first runs included,
    // is in memory before distress comes. Later mappings (thread stacks, heap growth) are
    // locked page by page as they are first touched: a 512 KiB stack that uses 40 KiB costs
    // 40 KiB (at 1,000 processes this is 27 MiB resident instead of 35).
    // SAFETY: mlockall takes flags only.
    let rc = unsafe {
        match libc::mlockall(libc::MCL_CURRENT) {
            0 => match libc::mlockall(libc::MCL_FUTURE | MCL_ONFAULT) {
                0 => 0,
                _ => libc::mlockall(libc::MCL_FUTURE),
            },
            err => err,
        }
    };
    if rc == 0 {
        format!("mlock: memory locked (mlockall current, then future pages as touched; RLIMIT_MEMLOCK {limit}, CAP_IPC_LOCK lifts it)")
    } else {
        format!(
            "mlock: not applied: {} (RLIMIT_MEMLOCK is {limit} and this process lacks CAP_IPC_LOCK); \
             running unlocked: under memory pressure the recorder's pages may be swapped out and samples late",
            std::io::Error::last_os_error()
        )
    }
}

/// Keeps freed heap memory in the process (no trimming, large blocks from the heap rather
/// than fresh mmaps) and touches [`PREFAULT_BYTES`] of it on the calling thread, so that
/// thread's arena holds resident (and, under mlockall, locked) pages a pass can reuse.
/// Call at the start of the sampling thread.
pub fn prefault_heap() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only changes allocator tuning.
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
    }
    // Many small blocks (as a pass allocates), all live at once, then freed together.
    let blocks: Vec<Vec<u8>> = (0..PREFAULT_BYTES / (64 << 10))
        .map(|_| vec![1u8; 64 << 10])
        .collect();
    std::hint::black_box(&blocks);
}

/// One line per measure: what was done, or why not.
pub fn apply(p: &Protect) -> Vec<String> {
    let mut report = Vec::new();
    report.push(if p.mlock {
        lock_memory()
    } else {
        "mlock: off in config".to_string()
    });
    report.push(
        match std::fs::write("/proc/self/oom_score_adj", p.oom_score_adj.to_string()) {
            Ok(()) => format!("oom_score_adj: set to {}", p.oom_score_adj),
            Err(e) => {
                format!("oom_score_adj: not applied: {e} (lowering it needs CAP_SYS_RESOURCE)")
            }
        },
    );
    // SAFETY: setpriority with PRIO_PROCESS and who = 0 affects the calling thread only.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, p.nice) };
    report.push(if rc == 0 {
        format!("nice: set to {}", p.nice)
    } else {
        format!(
            "nice: not applied: {} (negative values need root or CAP_SYS_NICE)",
            std::io::Error::last_os_error()
        )
    });
    report.push(match p.ionice_class {
        IoniceClass::None => "ionice: off in config".to_string(),
        class => {
            let c: libc::c_long = match class {
                IoniceClass::Realtime => 1,
                IoniceClass::BestEffort => 2,
                _ => 3,
            };
            let prio = (c << 13) | p.ionice_level as libc::c_long;
            // SAFETY: ioprio_set(IOPRIO_WHO_PROCESS = 1, 0 = this thread, prio).
            let rc = unsafe { libc::syscall(libc::SYS_ioprio_set, 1, 0, prio) };
            if rc == 0 {
                format!("ionice: set to {class:?} level {}", p.ionice_level)
            } else {
                format!(
                    "ionice: not applied: {} (the realtime class needs root or CAP_SYS_ADMIN)",
                    std::io::Error::last_os_error()
                )
            }
        }
    });
    report
}
