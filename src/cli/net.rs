//! `hogtrap net`: which processes moved network bytes, and to where. The seed's
//! tcpdump → lsof → ps in one command, live or after the fact.

use std::io::{IsTerminal, Write};

use anyhow::bail;

use super::{output, time, Ctx, FormatArgs};
use crate::model::{Level, TimestampMs};
use crate::store::query::{self, Talker};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A moment: the sample at or before it.
    #[arg(long, allow_hyphen_values = true, value_parser = time::arg, conflicts_with_all = ["from", "to", "live"])]
    pub at: Option<TimestampMs>,
    #[arg(long, allow_hyphen_values = true, value_parser = time::arg, requires = "to", conflicts_with = "live")]
    pub from: Option<TimestampMs>,
    #[arg(long, allow_hyphen_values = true, value_parser = time::arg, requires = "from")]
    pub to: Option<TimestampMs>,
    /// Watch now, refreshing every second (like nethogs); no store needed.
    #[arg(long)]
    pub live: bool,
    /// With --live: stop after this many refreshes.
    #[arg(long, requires = "live")]
    pub count: Option<u64>,
    /// How many processes to show.
    #[arg(short = 'n', default_value_t = 10)]
    pub n: usize,
    /// Sum processes, alive and exited, by program name, parent, user or cgroup.
    #[arg(long, value_enum, conflicts_with = "live")]
    pub group: Option<crate::model::Grouping>,
    #[command(flatten)]
    pub format: FormatArgs,
}

pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<()> {
    if args.live {
        return live(ctx, args.n, args.count, args.format.json);
    }
    recorded(ctx, &args)
}

fn recorded(ctx: &Ctx, a: &Args) -> anyhow::Result<()> {
    let store = ctx.open_store()?;
    let (db, conn) = (&store.path, &store.conn);
    let (from, to) = match (a.from, a.to, a.at) {
        (Some(f), Some(t), _) => (f, t),
        (_, _, at) => {
            let head = store.sample_at(at.unwrap_or_else(time::now))?;
            (head.ts_ms, head.ts_ms)
        }
    };
    if to < from {
        bail!("--to is before --from");
    }
    if let Some(group) = a.group {
        let mut out = std::io::stdout().lock();
        return super::top::groups(
            &mut out,
            conn,
            db,
            (from, to),
            crate::model::Resource::Net,
            group,
            a.n,
            &a.format,
        );
    }
    let talkers = query::talkers(conn, from, to, a.n)?;
    let totals = query::net_totals(conn, from, to)?;
    let closed = query::closed_unattributed(conn, from, to, a.n)?;
    if totals.samples == 0 {
        return Err(super::no_samples(from, to, db));
    }
    let mut out = std::io::stdout().lock();
    if a.format.json {
        return output::json(
            out,
            &serde_json::json!({ "from_ms": from, "to_ms": to, "totals": totals, "processes": talkers,
                "closed_unattributed": closed }),
        );
    }
    if a.format.csv {
        let header = "pid user name tx_bytes rx_bytes peak_tx_bps peak_rx_bps remotes cmdline";
        let record = |t: &Talker| {
            let who = [t.pid.to_string(), t.user.clone(), t.name.clone()];
            let bytes = [t.tx_bytes, t.rx_bytes].map(|b| format!("{b:.0}"));
            let peaks = [t.peak_tx_bytes_per_s, t.peak_rx_bytes_per_s].map(|b| b.to_string());
            let rest = [remotes_text(t), t.cmdline.clone()];
            [who.as_slice(), &bytes, &peaks, &rest].concat()
        };
        return output::csv(out, header.split(' '), talkers.iter().map(record));
    }
    if from == to {
        writeln!(out, "network at {}", time::format_local(from))?;
    } else {
        let span = time::span(from, to);
        writeln!(out, "network {span} ({} samples)", totals.samples)?;
    }
    writeln!(
        out,
        "interfaces (loopback excluded): sent {}, received {}; not attributed to a process: sent {}, received {}\n",
        output::bytes(totals.tx_bytes),
        output::bytes(totals.rx_bytes),
        output::bytes(totals.unattributed_tx_bytes),
        output::bytes(totals.unattributed_rx_bytes),
    )?;
    if talkers.is_empty() {
        writeln!(out, "no process moved TCP bytes")?;
        return closed_text(&mut out, &closed);
    }
    let [pid_h, user_h, name_h] = output::ProcessLabel::COLUMNS;
    let mut t = output::table(&[
        pid_h,
        user_h,
        name_h,
        "SENT",
        "RECEIVED",
        "PEAK TX/s",
        "PEAK RX/s",
        "REMOTE",
    ]);
    for k in &talkers {
        let [pid, user, name] = output::ProcessLabel::new(k.pid, &k.name, Some(&k.user)).cells();
        t.add_row(vec![
            pid,
            user,
            name,
            output::bytes(k.tx_bytes),
            output::bytes(k.rx_bytes),
            output::rate(k.peak_tx_bytes_per_s as f64),
            output::rate(k.peak_rx_bytes_per_s as f64),
            remotes_text(k),
        ]);
    }
    output::align_right(&mut t, &[0, 3, 4, 5, 6]);
    writeln!(out, "{}", output::render(&t))?;
    if talkers.iter().all(|k| k.remotes.is_empty()) {
        writeln!(
            out,
            "\n(remote endpoints are recorded at detail level, while a capture runs)"
        )?;
    }
    closed_text(&mut out, &closed)
}

/// Closed connections no owner was found for, with their endpoints.
fn closed_text(out: &mut impl Write, closed: &[query::ClosedSocket]) -> anyhow::Result<()> {
    if closed.is_empty() {
        return Ok(());
    }
    writeln!(out, "\nclosed TCP connections with no owner found:")?;
    let mut t = output::table(&["LOCAL", "REMOTE", "SENT", "RECEIVED"]);
    let endpoint = |addr: &str, port: u16| {
        if addr.contains(':') {
            format!("[{addr}]:{port}")
        } else {
            format!("{addr}:{port}")
        }
    };
    for c in closed {
        t.add_row(vec![
            endpoint(&c.local_addr, c.local_port),
            endpoint(&c.remote_addr, c.remote_port),
            output::bytes(c.tx_bytes),
            output::bytes(c.rx_bytes),
        ]);
    }
    output::align_right(&mut t, &[2, 3]);
    writeln!(out, "{}", output::render(&t))?;
    Ok(())
}

fn remotes_text(t: &Talker) -> String {
    t.remotes
        .iter()
        .map(|r| {
            if r.addr.contains(':') {
                format!("[{}]:{}", r.addr, r.port)
            } else {
                format!("{}:{}", r.addr, r.port)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A refreshing view of who moves bytes now, like nethogs. `count`: stop after that many
/// refreshes (for scripts); the screen is redrawn only on a terminal.
fn live(ctx: &Ctx, n: usize, count: Option<u64>, json: bool) -> anyhow::Result<()> {
    let cfg = ctx.config()?;
    let mut c = crate::collect::Collector::new(cfg.sampler.source);
    for notice in c.take_notices() {
        eprintln!("hogtrap: note: {notice}");
    }
    let host = crate::collect::host_name(&cfg.sampler);
    let tty = std::io::stdout().is_terminal();
    let mut done = 0u64;
    loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
        let s = c.sample(Level::Detail, &host);
        for notice in c.take_notices() {
            eprintln!("hogtrap: note: {notice}");
        }
        let mut procs: Vec<&crate::model::ProcessRow> = s
            .processes
            .iter()
            .filter(|p| {
                p.net_tx_bytes_per_s.unwrap_or(0.0) + p.net_rx_bytes_per_s.unwrap_or(0.0) > 0.0
            })
            .collect();
        procs.sort_by(|a, b| {
            let k = |p: &crate::model::ProcessRow| {
                p.net_tx_bytes_per_s.unwrap_or(0.0) + p.net_rx_bytes_per_s.unwrap_or(0.0)
            };
            k(b).total_cmp(&k(a))
        });
        procs.truncate(n);
        let mut out = std::io::stdout().lock();
        if json {
            let rows: Vec<serde_json::Value> = procs
                .iter()
                .map(|p| {
                    let remotes: Vec<String> = s
                        .connections
                        .iter()
                        .filter(|c| c.pid == Some(p.id.pid) && c.remote_port != 0)
                        .map(|c| format!("{}:{}", c.remote_addr, c.remote_port))
                        .collect();
                    serde_json::json!({
                        "pid": p.id.pid, "user": p.id.user, "name": p.id.name,
                        "tx_bytes_per_s": p.net_tx_bytes_per_s, "rx_bytes_per_s": p.net_rx_bytes_per_s,
                        "remotes": remotes,
                    })
                })
                .collect();
            writeln!(
                out,
                "{}",
                serde_json::json!({ "ts_ms": s.ts_ms, "processes": rows })
            )?;
        } else {
            if tty {
                write!(out, "\x1b[2J\x1b[H")?;
            }
            writeln!(
                out,
                "{}  {}  interfaces: tx {} rx {} (not attributed: tx {} rx {})   Ctrl-C to quit\n",
                time::format_local(s.ts_ms),
                s.host_name,
                output::rate(s.host.net_tx_bytes_per_s),
                output::rate(s.host.net_rx_bytes_per_s),
                output::rate(s.host.net_unattributed_tx_bytes_per_s),
                output::rate(s.host.net_unattributed_rx_bytes_per_s),
            )?;
            let [pid_h, user_h, name_h] = output::ProcessLabel::COLUMNS;
            let mut t = output::table(&[pid_h, user_h, name_h, "TX/s", "RX/s", "REMOTE"]);
            for p in &procs {
                let remotes: Vec<String> = s
                    .connections
                    .iter()
                    .filter(|c| c.pid == Some(p.id.pid) && c.remote_port != 0)
                    .take(3)
                    .map(|c| format!("{}:{}", c.remote_addr, c.remote_port))
                    .collect();
                let [pid, user, name] = output::ProcessLabel::of(&p.id).cells();
                t.add_row(vec![
                    pid,
                    user,
                    name,
                    output::rate(p.net_tx_bytes_per_s.unwrap_or(0.0)),
                    output::rate(p.net_rx_bytes_per_s.unwrap_or(0.0)),
                    remotes.join(", "),
                ]);
            }
            output::align_right(&mut t, &[0, 3, 4]);
            writeln!(out, "{}", output::render(&t))?;
        }
        out.flush()?;
        done += 1;
        if count.is_some_and(|c| done >= c) {
            return Ok(());
        }
    }
}
