//! Self-protection under distress (SPEC §10): lock memory, shield from the OOM killer, raise
//! CPU and I/O priority. Applied once, at start, before any thread exists (niceness and I/O
//! priority are per thread on Linux and inherited by threads created later). Each measure is
//! reported: applied, or why not. None of them failing stops the recorder.

use crate::config::{IoniceClass, Protect};

/// One line per measure: what was done, or why not.
pub fn apply(p: &Protect) -> Vec<String> {
    let mut report = Vec::new();
    report.push(if p.mlock {
        // SAFETY: mlockall takes flags only.
        let rc = unsafe { libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE) };
        if rc == 0 {
            "mlock: memory locked (mlockall current+future)".to_string()
        } else {
            format!(
                "mlock: not applied: {} (needs root or CAP_IPC_LOCK and a large enough RLIMIT_MEMLOCK)",
                std::io::Error::last_os_error()
            )
        }
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
