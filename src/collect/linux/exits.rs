//! Exit accounting: turns the kernel's per-task exit records ([`super::taskstats`]) into one
//! [`ProcessExit`] per exited process, charged only with what no sample already counted.
//!
//! Guarantees:
//! - Threads are folded into their process: a thread that exits while its process lives is
//!   already in the process's `/proc` counters and is not charged again; a process's row sums
//!   its threads that exited since it was last sampled.
//! - A process seen alive by a sample is charged what it used after that sample (its counters
//!   at exit minus those last read); one never seen is charged its whole life. So range totals
//!   over process rows plus exit rows count every CPU-second and byte once.
//! - Under a storm the top [`TOP_EXITS`] by CPU and by I/O keep a row each; the rest are rolled
//!   up by parent, user and name with their count and sums, so no total loses anything.

use std::collections::HashMap;

use crate::model::{ProcessExit, ProcessIdentity};

use super::procfs::ProcReader;
use super::taskstats::{Drained, ExitListener, TaskExit};

/// Exited processes kept with a row of their own per sample, by CPU and by I/O each.
pub const TOP_EXITS: usize = 20;

/// How far (clock ticks) a start time computed from an exit record may be from the one `/proc`
/// gave, and still be the same process. The computed start is the time the record was received
/// minus the process's age: it is late by however long the record waited in the socket (seconds
/// on a host in distress), never early but for rounding.
const START_EARLY_TICKS: u64 = 3;
const START_LATE_TICKS: u64 = 1000;

#[derive(Debug, Default, Clone)]
struct Acc {
    /// Sum over the threads' records folded so far.
    cpu_ns: u64,
    read: u64,
    write: u64,
    /// The leader's record, once it arrived.
    leader: Option<TaskExit>,
    /// Any record of the process (for a name and parent when the leader's is missing).
    any: Option<TaskExit>,
    /// Samples this entry has waited for its leader.
    waited: u32,
}

/// The exit accountant of the Linux collector.
pub struct ExitAccountant {
    listener: ExitListener,
    pending: HashMap<u32, Acc>,
    /// CPU, read and write of threads that exited while their process lived, by tgid: part of
    /// the process's `/proc` counters, needed to find what its last threads used.
    dead_threads: HashMap<u32, (u64, u64, u64)>,
    /// Exit records lost since the last sample (kernel overruns and queue overflows).
    pub lost: u64,
    /// Malformed messages since the last sample.
    pub malformed: u64,
}

impl ExitAccountant {
    pub fn start() -> Result<ExitAccountant, String> {
        Ok(ExitAccountant {
            listener: ExitListener::start()?,
            pending: HashMap::new(),
            dead_threads: HashMap::new(),
            lost: 0,
            malformed: 0,
        })
    }

    /// The receive buffer the kernel granted.
    pub fn recv_buffer_bytes(&self) -> usize {
        self.listener.recv_buffer_bytes
    }

    /// Takes the records that arrived; call before the process pass of a sample.
    pub fn drain(&mut self) -> Drained {
        self.listener.drain()
    }

    /// Folds `drained` (taken before this sample's process pass) into exited processes, after
    /// the pass (`procs` knows who is alive and what was last read of who is gone).
    pub fn account(&mut self, drained: Drained, procs: &mut ProcReader) -> Vec<ProcessExit> {
        self.lost = drained.overruns + drained.dropped;
        self.malformed = drained.malformed;
        fold(&mut self.pending, drained.exits);
        let mut out = Vec::new();
        let tgids: Vec<u32> = self.pending.keys().copied().collect();
        for tgid in tgids {
            let Some(acc) = self.pending.get_mut(&tgid) else {
                continue;
            };
            let done = acc.leader.is_some();
            if !done && procs.is_alive(tgid) {
                // Threads of a live process: already in its counters.
                let d = self.dead_threads.entry(tgid).or_default();
                d.0 += acc.cpu_ns;
                d.1 += acc.read;
                d.2 += acc.write;
                self.pending.remove(&tgid);
                continue;
            }
            if !done && acc.waited < 1 {
                // Gone, but its leader's record is not in yet: give it one more sample.
                acc.waited += 1;
                continue;
            }
            let Some(acc) = self.pending.remove(&tgid) else {
                continue;
            };
            let dead = self.dead_threads.remove(&tgid).unwrap_or_default();
            if let Some(e) = finish(tgid, &acc, dead, procs) {
                out.push(e);
            }
        }
        // Forget dead-thread sums of processes that are gone without a record.
        if self.dead_threads.len() > 4096 {
            self.dead_threads.retain(|&tgid, _| procs.is_alive(tgid));
        }
        roll_up(out, TOP_EXITS)
    }
}

/// Adds task records to the per-process accumulators.
fn fold(pending: &mut HashMap<u32, Acc>, exits: Vec<TaskExit>) {
    for e in exits {
        let acc = pending.entry(e.tgid).or_default();
        acc.cpu_ns = acc.cpu_ns.saturating_add(e.cpu_ns);
        acc.read = acc.read.saturating_add(e.read_bytes);
        acc.write = acc.write.saturating_add(e.write_bytes);
        if e.pid == e.tgid {
            acc.leader = Some(e.clone());
        }
        if acc.any.is_none() {
            acc.any = Some(e);
        }
    }
}

/// Decodes a `wait(2)` status: the exit code, or minus the signal.
pub fn exit_code(status: u32) -> i32 {
    let sig = (status & 0x7f) as i32;
    if sig != 0 {
        -sig
    } else {
        ((status >> 8) & 0xff) as i32
    }
}

/// One exited process, charged with what no sample counted.
fn finish(
    tgid: u32,
    acc: &Acc,
    dead: (u64, u64, u64),
    procs: &mut ProcReader,
) -> Option<ProcessExit> {
    let rec = acc.leader.as_ref().or(acc.any.as_ref())?;
    let clk = procs.clk_tck();
    let start_uptime_ms = rec.received_uptime_ms - rec.elapsed_us as f64 / 1000.0;
    let start_ticks = (start_uptime_ms.max(0.0) * clk / 1000.0).round() as u64;
    let now_ms = jiff::Timestamp::now().as_millisecond();
    let uptime_now = super::host::uptime_ms();
    let end_ms = now_ms - (uptime_now - rec.received_uptime_ms).max(0.0) as i64;
    let seen = procs.last_seen(tgid, start_ticks, START_LATE_TICKS, START_EARLY_TICKS);
    // The process's lifetime totals: its threads that exited while it lived, plus those folded
    // since.
    let life_cpu_ns = acc.cpu_ns.saturating_add(dead.0);
    let life_read = acc.read.saturating_add(dead.1);
    let life_write = acc.write.saturating_add(dead.2);
    let seen_alive = seen.is_some();
    let (cpu_ns, read, write, id) = match seen {
        Some(s) => {
            let base_ns = (s.cpu_ticks as f64 * 1e9 / clk) as u64;
            let (br, bw) = s.io.unwrap_or((0, 0));
            let id = match s.identity {
                // Renamed (exec, prctl) since the last sample read its identity: a child
                // sampled between fork and exec exits as the program it became.
                Some(mut id)
                    if acc.leader.is_some() && s.identity_comm.as_ref() != Some(&rec.comm) =>
                {
                    id.name = rec.comm.clone();
                    id.cmdline.clear();
                    id
                }
                Some(id) => id,
                None => synthesized(tgid, rec, s.start_ticks, procs),
            };
            (
                life_cpu_ns.saturating_sub(base_ns),
                life_read.saturating_sub(br),
                life_write.saturating_sub(bw),
                id,
            )
        }
        None => (
            life_cpu_ns,
            life_read,
            life_write,
            synthesized(tgid, rec, start_ticks, procs),
        ),
    };
    Some(ProcessExit {
        id,
        end_ms,
        exit_code: acc.leader.as_ref().map(|l| exit_code(l.exit_status)),
        count: 1,
        cpu_ms: cpu_ns as f64 / 1e6,
        read_bytes: read,
        write_bytes: write,
        life_cpu_ms: life_cpu_ns as f64 / 1e6,
        life_read_bytes: life_read,
        life_write_bytes: life_write,
        seen_alive,
    })
}

/// The identity of a process no sample saw: what its exit record says.
fn synthesized(
    tgid: u32,
    rec: &TaskExit,
    start_ticks: u64,
    procs: &mut ProcReader,
) -> ProcessIdentity {
    ProcessIdentity {
        pid: tgid,
        ppid: rec.ppid,
        start_time_ms: procs.boot_time_ms()
            + (start_ticks as f64 * 1000.0 / procs.clk_tck()) as i64,
        uid: rec.uid,
        user: procs.user_name(rec.uid),
        name: rec.comm.clone(),
        cmdline: String::new(),
    }
}

/// Keeps the top `n` by CPU and the top `n` by I/O with a row each, and every exit a sample
/// saw alive (its rows are in the store under its identity: a roll-up would count its life
/// twice), and rolls the rest up by (parent, user, name), summing and counting. Output: kept
/// rows by CPU, then roll-ups.
pub fn roll_up(exits: Vec<ProcessExit>, n: usize) -> Vec<ProcessExit> {
    if exits.len() <= 2 * n {
        return exits;
    }
    let keep = crate::collect::top_union(
        exits.len(),
        n,
        &[&|i| exits[i].cpu_ms, &|i| {
            (exits[i].read_bytes + exits[i].write_bytes) as f64
        }],
    );
    let mut kept = vec![false; exits.len()];
    for &i in &keep {
        kept[i] = true;
    }
    for (i, e) in exits.iter().enumerate() {
        kept[i] |= e.seen_alive;
    }
    let mut out = Vec::with_capacity(keep.len() + 8);
    let mut groups: HashMap<(u32, u32, String), ProcessExit> = HashMap::new();
    for (i, e) in exits.into_iter().enumerate() {
        if kept[i] {
            out.push(e);
            continue;
        }
        let key = (e.id.ppid, e.id.uid, e.id.name.clone());
        let g = groups.entry(key).or_insert_with(|| ProcessExit {
            id: ProcessIdentity {
                pid: 0,
                ppid: e.id.ppid,
                start_time_ms: e.id.start_time_ms,
                uid: e.id.uid,
                user: e.id.user.clone(),
                name: e.id.name.clone(),
                cmdline: String::new(),
            },
            end_ms: e.end_ms,
            exit_code: None,
            count: 0,
            ..Default::default()
        });
        g.count += e.count;
        g.cpu_ms += e.cpu_ms;
        g.read_bytes += e.read_bytes;
        g.write_bytes += e.write_bytes;
        g.life_cpu_ms += e.life_cpu_ms;
        g.life_read_bytes += e.life_read_bytes;
        g.life_write_bytes += e.life_write_bytes;
        g.end_ms = g.end_ms.max(e.end_ms);
        g.id.start_time_ms = g.id.start_time_ms.min(e.id.start_time_ms);
    }
    out.sort_by(|a, b| b.cpu_ms.total_cmp(&a.cpu_ms));
    let mut rolled: Vec<ProcessExit> = groups.into_values().collect();
    rolled.sort_by(|a, b| b.cpu_ms.total_cmp(&a.cpu_ms));
    out.extend(rolled);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exit(pid: u32, ppid: u32, name: &str, cpu_ms: f64, write: u64) -> ProcessExit {
        ProcessExit {
            id: ProcessIdentity {
                pid,
                ppid,
                name: name.into(),
                start_time_ms: 1000 + pid as i64,
                ..Default::default()
            },
            end_ms: 5000 + pid as i64,
            exit_code: Some(0),
            count: 1,
            cpu_ms,
            read_bytes: 0,
            write_bytes: write,
            life_cpu_ms: cpu_ms,
            life_read_bytes: 0,
            life_write_bytes: write,
            seen_alive: false,
        }
    }

    #[test]
    fn a_storm_keeps_the_top_and_rolls_up_the_rest_without_losing_totals() {
        let mut v: Vec<ProcessExit> = (1..=500)
            .map(|i| exit(i, if i % 2 == 0 { 10 } else { 11 }, "perl", i as f64, 0))
            .collect();
        v.push(exit(9999, 12, "dd", 0.5, 50 << 20));
        let total_cpu: f64 = v.iter().map(|e| e.cpu_ms).sum();
        let got = roll_up(v, 5);
        assert_eq!(got.iter().map(|e| e.count).sum::<u32>(), 501);
        let got_cpu: f64 = got.iter().map(|e| e.cpu_ms).sum();
        assert!((got_cpu - total_cpu).abs() < 1e-6);
        assert!(got.iter().any(|e| e.id.name == "dd" && e.count == 1));
        assert_eq!(got[0].id.pid, 500);
        let rolled: Vec<_> = got.iter().filter(|e| e.count > 1).collect();
        assert_eq!(rolled.len(), 2, "one roll-up per parent: {rolled:?}");
        assert!(rolled
            .iter()
            .all(|e| e.id.pid == 0 && e.exit_code.is_none()));
    }

    #[test]
    fn exits_seen_alive_are_never_rolled_up() {
        let mut v: Vec<ProcessExit> = (1..=100).map(|i| exit(i, 10, "perl", 1.0, 0)).collect();
        v[50].seen_alive = true;
        let got = roll_up(v, 5);
        assert!(got.iter().any(|e| e.id.pid == 51 && e.count == 1));
        assert_eq!(got.iter().map(|e| e.count).sum::<u32>(), 100);
    }

    #[test]
    fn few_exits_are_kept_as_they_are() {
        let v = vec![exit(1, 2, "a", 1.0, 0), exit(3, 2, "b", 2.0, 0)];
        assert_eq!(roll_up(v.clone(), 5), v);
    }

    #[test]
    fn threads_fold_into_their_process() {
        let mut pending = HashMap::new();
        let t = |pid, tgid, cpu| TaskExit {
            pid,
            tgid,
            cpu_ns: cpu,
            write_bytes: 10,
            ..Default::default()
        };
        fold(
            &mut pending,
            vec![t(101, 100, 5), t(102, 100, 7), t(100, 100, 1)],
        );
        let a = &pending[&100];
        assert_eq!((a.cpu_ns, a.write), (13, 30));
        assert_eq!(a.leader.as_ref().map(|l| l.pid), Some(100));
    }

    #[test]
    fn wait_statuses_decode() {
        assert_eq!(exit_code(3 << 8), 3);
        assert_eq!(exit_code(9), -9);
        assert_eq!(exit_code(0), 0);
    }
}
