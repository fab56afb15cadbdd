//! `hogtrap sample`: take one sample now and print it, exactly what rules see.

use std::io::Write;

use super::{output, time, Ctx, JsonFlag};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub format: JsonFlag,
    /// Every process, with detail-level extras and connections (what rules see during a
    /// capture), instead of the top ones a baseline sample keeps.
    #[arg(long)]
    pub all: bool,
}

pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<()> {
    let Args {
        format: JsonFlag { json },
        all,
    } = args;
    let cfg = ctx.config()?;
    let mut c = crate::collect::Collector::new(cfg.sampler.source);
    // The collector primes its counters on creation; wait so rates cover a real interval.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let host = crate::collect::host_name(&cfg.sampler);
    let level = if all {
        crate::model::Level::Detail
    } else {
        crate::model::Level::Baseline
    };
    let full = c.sample(level, &host);
    let s = if all {
        full
    } else {
        crate::collect::baseline_subset(&full, cfg.sampler.top_processes)
    };
    let mut out = std::io::stdout().lock();
    if json {
        return output::json(out, &s);
    }
    let h = &s.host;
    writeln!(
        out,
        "{}  {}  {} CPUs  load {:.2} {:.2} {:.2}  cpu {} (iowait {}, steal {})",
        time::format_local(s.ts_ms),
        s.host_name,
        s.cpu_count,
        h.load1,
        h.load5,
        h.load15,
        output::pct(100.0 - h.cpu_idle_pct),
        output::pct(h.cpu_iowait_pct),
        output::pct(h.cpu_steal_pct),
    )?;
    writeln!(
        out,
        "mem {} used of {} ({} available)  swap {} of {}",
        output::bytes(h.mem_used_bytes as f64),
        output::bytes(h.mem_total_bytes as f64),
        output::bytes(h.mem_available_bytes as f64),
        output::bytes(h.swap_used_bytes as f64),
        output::bytes(h.swap_total_bytes as f64),
    )?;
    let psi = |p: &Option<crate::model::Psi>| {
        p.map_or("n/a".to_string(), |p| format!("{:.1}%", p.some_avg10))
    };
    writeln!(
        out,
        "psi some avg10: cpu {} mem {} io {}  tasks {} running {} blocked of {}  forks {:.0}/s  ctxsw {:.0}/s",
        psi(&h.psi_cpu),
        psi(&h.psi_memory),
        psi(&h.psi_io),
        h.procs_running,
        h.procs_blocked,
        h.procs_total,
        h.forks_per_s,
        h.ctxsw_per_s
    )?;
    writeln!(
        out,
        "disk read {} write {}  net rx {} tx {}\n",
        output::rate(h.disk_read_bytes_per_s),
        output::rate(h.disk_write_bytes_per_s),
        output::rate(h.net_rx_bytes_per_s),
        output::rate(h.net_tx_bytes_per_s),
    )?;
    let mut rows: Vec<&crate::model::ProcessRow> = s.processes.iter().collect();
    rows.sort_by(|a, b| b.cpu_pct.total_cmp(&a.cpu_pct));
    let mut t = output::table(&output::PROCESS_COLUMNS);
    for p in rows {
        t.add_row(output::process_cells(
            &output::ProcessLabel::of(&p.id),
            &output::ProcessNumbers::from(p),
        ));
    }
    output::align_right(&mut t, &output::PROCESS_NUMERIC);
    writeln!(out, "{}", output::render(&t))?;
    Ok(())
}
