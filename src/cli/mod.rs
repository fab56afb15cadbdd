//! The command line. Commands are defined once here (clap derive); `--help` and
//! `docs/cli.md`-style docs come from these definitions. Every command that reads the record
//! opens the store read-only. Errors reach the user as one line and a non-zero exit code.

mod incidents;
mod net;
pub mod output;
pub mod prune;
mod report;
mod rules;
pub mod time;

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::Config;
use crate::store::{self, query};

#[derive(Parser, Debug)]
#[command(
    name = "hogtrap",
    version,
    about = "A scriptable flight recorder for Linux hosts",
    long_about = "hogtrap samples the host and its processes into one SQLite file, continuously, \
                  and answers afterwards: what ran at 03:12, which process was it."
)]
pub struct Cli {
    /// Config file (TOML). Without it: the embedded default (10s interval, ./hogtrap.db, ./rules).
    #[arg(short, long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Store file to read, overriding [store] path (query commands).
    #[arg(long, global = true, value_name = "FILE")]
    pub db: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the recorder in the foreground (SIGTERM/SIGINT: stop after the sample in flight; SIGHUP: reload).
    Run,
    /// Take one sample now and print it: exactly what rules see.
    Sample {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Every process, with detail-level extras and connections (what rules see during a
        /// capture), instead of the top ones a baseline sample keeps.
        #[arg(long)]
        all: bool,
    },
    /// What was running at a time, or the top consumers over a range.
    Top(TopArgs),
    /// Which processes moved network bytes, with remote endpoints where detail was captured.
    Net {
        /// A moment: the sample at or before it.
        #[arg(long, conflicts_with_all = ["from", "to", "live"])]
        at: Option<String>,
        #[arg(long, requires = "to", conflicts_with = "live")]
        from: Option<String>,
        #[arg(long, requires = "from")]
        to: Option<String>,
        /// Watch now, refreshing every second (like nethogs); no store needed.
        #[arg(long)]
        live: bool,
        /// With --live: stop after this many refreshes.
        #[arg(long, requires = "live")]
        count: Option<u64>,
        /// How many processes to show.
        #[arg(short = 'n', default_value_t = 10)]
        n: usize,
        #[command(flatten)]
        format: FormatArgs,
    },
    /// Run a read-only SQL query against the store.
    Sql {
        /// The query, e.g. "SELECT HostName, DateAndTime, Load FROM savetop".
        query: String,
        #[command(flatten)]
        format: FormatArgs,
    },
    /// The incident list.
    Incidents {
        /// Only incidents open at or after this time.
        #[arg(long)]
        since: Option<String>,
        /// Only this rule's incidents.
        #[arg(long)]
        rule: Option<String>,
        /// Only open incidents.
        #[arg(long)]
        open: bool,
        #[arg(long)]
        json: bool,
    },
    /// One incident's story: rule, severity, peaks, culprits, timeline, captures, alerts.
    Show {
        /// Incident number (see `hogtrap incidents`).
        id: i64,
        #[arg(long)]
        json: bool,
        /// The whole timeline, not 30 rows of it.
        #[arg(long)]
        full: bool,
    },
    /// One self-contained HTML page about an incident or a range: charts, culprits, alerts, connections.
    Report(report::ReportArgs),
    /// Check, test and backtest the Lua rules.
    #[command(subcommand)]
    Rules(RulesCommand),
    /// Alert channels: send a test message.
    Alert {
        #[command(subcommand)]
        command: AlertCommand,
    },
    /// Apply the [retention] policies now (or say what would go with --dry-run): what goes
    /// and what stays, by reason and table.
    Prune {
        /// Only say what would go; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Is the daemon recording; last sample's age; gaps; DB size; undelivered alerts.
    Status {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum RulesCommand {
    /// Compile and validate every rule file; errors name file and line.
    Check,
    /// Run rule test files (fixture samples in, expected firings and actions out; see docs/rules.md).
    Test {
        /// Test files; default: every *.toml in the rules directory's tests/.
        files: Vec<PathBuf>,
    },
    /// Replay recorded samples through the rules with actions held: when each rule would have fired.
    Backtest {
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
        /// Only this rule's firings.
        #[arg(long)]
        rule: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum AlertCommand {
    /// Send a test message now through the configured channels (all enabled ones, or those
    /// named) and say what happened on each. Goes straight to the servers, not through the
    /// outbox.
    Test {
        /// Send by email (even if [email] enabled = false).
        #[arg(long)]
        email: bool,
        /// Send a desktop notification (even if [desktop] enabled = false).
        #[arg(long)]
        desktop: bool,
    },
}

#[derive(Args, Debug)]
pub struct TopArgs {
    /// A moment: "now", "2026-11-26 03:12", "10m ago", RFC 3339.
    #[arg(long, conflicts_with_all = ["from", "to"])]
    pub at: Option<String>,
    /// Start of a range.
    #[arg(long, requires = "to")]
    pub from: Option<String>,
    /// End of a range.
    #[arg(long, requires = "from")]
    pub to: Option<String>,
    /// Rank by this resource.
    #[arg(long, value_enum, default_value_t = By::Cpu)]
    pub by: By,
    /// How many processes to show.
    #[arg(short = 'n', default_value_t = 10)]
    pub n: usize,
    #[command(flatten)]
    pub format: FormatArgs,
}

#[derive(Args, Debug, Clone, Copy)]
pub struct FormatArgs {
    /// Comma-separated values.
    #[arg(long, conflicts_with = "json")]
    pub csv: bool,
    /// JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    Cpu,
    Mem,
    Io,
    Net,
}

impl From<By> for query::Resource {
    fn from(b: By) -> Self {
        match b {
            By::Cpu => query::Resource::Cpu,
            By::Mem => query::Resource::Mem,
            By::Io => query::Resource::Io,
            By::Net => query::Resource::Net,
        }
    }
}

/// Entry point: parses arguments, runs the command, turns errors into one line.
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging();
    match dispatch(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line: the chain of contexts, joined, without repeating causes that an error
            // already spells out in its own text.
            let mut msg = String::new();
            for part in e.chain().map(|c| c.to_string()) {
                if msg.contains(&part) {
                    continue;
                }
                if !msg.is_empty() {
                    msg.push_str(": ");
                }
                msg.push_str(&part);
            }
            let msg = msg.replace('\n', " ");
            let _ = writeln!(std::io::stderr(), "hogtrap: error: {msg}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HOGTRAP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run => crate::daemon::run(cli.config),
        Command::Sample { json, all } => cmd_sample(cli.config.as_deref(), json, all),
        Command::Top(args) => {
            let db = db_path(&cli.config, &cli.db)?;
            cmd_top(&db, &args)
        }
        Command::Sql { query, format } => {
            let db = db_path(&cli.config, &cli.db)?;
            cmd_sql(&db, &query, format)
        }
        Command::Net {
            at,
            from,
            to,
            live,
            count,
            n,
            format,
        } => {
            if live {
                return net::live(cli.config.as_deref(), n, count, format.json);
            }
            let db = db_path(&cli.config, &cli.db)?;
            net::recorded(
                &db,
                &net::NetArgs {
                    at: at.as_deref(),
                    from: from.as_deref(),
                    to: to.as_deref(),
                    n,
                    json: format.json,
                    csv: format.csv,
                },
            )
        }
        Command::Incidents {
            since,
            rule,
            open,
            json,
        } => {
            let db = db_path(&cli.config, &cli.db)?;
            incidents::list(&db, since.as_deref(), rule.as_deref(), open, json)
        }
        Command::Show { id, json, full } => {
            let db = db_path(&cli.config, &cli.db)?;
            incidents::show(&db, id, json, full)
        }
        Command::Report(args) => report::run(&db_path(&cli.config, &cli.db)?, &args),
        Command::Rules(cmd) => {
            let cfg = Config::load_or_default(cli.config.as_deref())?;
            match cmd {
                RulesCommand::Check => rules::check(&cfg),
                RulesCommand::Test { files } => rules::test(&cfg, &files),
                RulesCommand::Backtest {
                    from,
                    to,
                    rule,
                    json,
                } => {
                    let db = cli.db.clone().unwrap_or(cfg.store.path.clone());
                    rules::backtest(&cfg, &db, &from, &to, rule.as_deref(), json)
                }
            }
        }
        Command::Alert {
            command: AlertCommand::Test { email, desktop },
        } => cmd_alert_test(cli.config.as_deref(), email, desktop),
        Command::Prune { dry_run, json } => {
            let config = Config::load_or_default(cli.config.as_deref())?;
            let db = cli.db.clone().unwrap_or_else(|| config.store.path.clone());
            prune::run(&config, &db, dry_run, json)
        }
        Command::Status { json } => {
            let db = db_path(&cli.config, &cli.db)?;
            cmd_status(&db, json)
        }
    }
}

fn db_path(config: &Option<PathBuf>, db: &Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(db) = db {
        return Ok(db.clone());
    }
    Ok(Config::load_or_default(config.as_deref())?.store.path)
}

fn open(db: &Path) -> anyhow::Result<rusqlite::Connection> {
    Ok(store::open_read_only(db)?)
}

fn cmd_sample(config: Option<&Path>, json: bool, all: bool) -> anyhow::Result<()> {
    let cfg = Config::load_or_default(config)?;
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
        serde_json::to_writer_pretty(&mut out, &s)?;
        writeln!(out)?;
        return Ok(());
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
        let label = output::ProcessLabel::new(p.id.pid, &p.id.name, Some(&p.id.user))
            .with_cmdline(Some(&p.id.cmdline));
        t.add_row(output::process_cells(
            &label,
            &output::ProcessNumbers {
                state: p.state.to_string(),
                cpu_pct: p.cpu_pct,
                rss_bytes: p.rss_bytes as f64,
                read_bytes_per_s: p.read_bytes_per_s,
                write_bytes_per_s: p.write_bytes_per_s,
                net_bytes_per_s: net_rate(p.net_tx_bytes_per_s, p.net_rx_bytes_per_s),
                threads: p.threads as i64,
            },
        ));
    }
    output::align_right(&mut t, &output::PROCESS_NUMERIC);
    writeln!(out, "{}", output::render(&t))?;
    Ok(())
}

fn cmd_top(db: &Path, a: &TopArgs) -> anyhow::Result<()> {
    let conn = open(db)?;
    let by: query::Resource = a.by.into();
    let mut out = std::io::stdout().lock();
    if let (Some(from), Some(to)) = (&a.from, &a.to) {
        let from = time::parse_time(from).map_err(anyhow::Error::msg)?;
        let to = time::parse_time(to).map_err(anyhow::Error::msg)?;
        if to < from {
            bail!("--to is before --from");
        }
        let rows = query::top_over_range(&conn, from, to, by, a.n)
            .with_context(|| format!("{}: reading the range", db.display()))?;
        let n = query::count_samples(&conn, from, to)?;
        if n == 0 {
            bail!(
                "no samples between {} and {} in {}",
                time::format_local(from),
                time::format_local(to),
                db.display()
            );
        }
        if a.format.json {
            serde_json::to_writer_pretty(&mut out, &rows)?;
            writeln!(out)?;
            return Ok(());
        }
        let (avg_h, peak_h, total_h) = match a.by {
            By::Cpu => ("AVG CPU", "PEAK CPU", "CPU TIME"),
            By::Mem => ("AVG RSS", "PEAK RSS", "PEAK RSS"),
            By::Io => ("AVG IO/s", "PEAK IO/s", "TOTAL IO"),
            By::Net => ("AVG NET/s", "PEAK NET/s", "TOTAL NET"),
        };
        let [pid_h, user_h, name_h] = output::ProcessLabel::COLUMNS;
        let header = [
            pid_h, user_h, name_h, "SAMPLES", avg_h, peak_h, total_h, "COMMAND",
        ];
        if a.format.csv {
            let mut w = csv::Writer::from_writer(out);
            w.write_record(header)?;
            for r in &rows {
                w.write_record([
                    r.pid.to_string(),
                    r.user.clone(),
                    r.name.clone(),
                    r.samples.to_string(),
                    r.avg.to_string(),
                    r.peak.to_string(),
                    r.total.to_string(),
                    r.cmdline.clone(),
                ])?;
            }
            w.flush()?;
            return Ok(());
        }
        writeln!(
            out,
            "{} samples from {} to {}, by {:?}\n",
            n,
            time::format_local(from),
            time::format_local(to),
            a.by
        )?;
        let mut t = output::table(&header);
        for r in &rows {
            let label = output::ProcessLabel::new(r.pid, &r.name, Some(&r.user))
                .with_cmdline(Some(&r.cmdline));
            let [pid, user, name] = label.cells();
            t.add_row(vec![
                pid,
                user,
                name,
                r.samples.to_string(),
                output::resource_value(by, r.avg),
                output::resource_value(by, r.peak),
                output::resource_total(by, r.total),
                label.command(60),
            ]);
        }
        output::align_right(&mut t, &[0, 3, 4, 5, 6]);
        writeln!(out, "{}", output::render(&t))?;
        return Ok(());
    }
    let at = time::parse_time(a.at.as_deref().unwrap_or("now")).map_err(anyhow::Error::msg)?;
    let Some(head) = query::sample_at(&conn, at)? else {
        bail!(
            "no sample at or before {} in {}",
            time::format_local(at),
            db.display()
        );
    };
    let rows = query::processes_of_sample(&conn, head.sample_id, by, a.n)?;
    if a.format.json {
        serde_json::to_writer_pretty(
            &mut out,
            &serde_json::json!({ "sample": head, "processes": rows }),
        )?;
        writeln!(out)?;
        return Ok(());
    }
    let header = [
        "PID", "USER", "NAME", "S", "CPU%", "RSS", "READ/s", "WRITE/s", "THR", "COMMAND",
    ];
    // CSV keeps raw numbers (and its columns); people get the shared process row.
    if a.format.csv {
        let mut w = csv::Writer::from_writer(out);
        w.write_record(header)?;
        for p in &rows {
            w.write_record([
                p.pid.to_string(),
                p.user.clone(),
                p.name.clone(),
                p.state.clone(),
                p.cpu_pct.to_string(),
                p.rss_bytes.to_string(),
                p.read_bytes_per_s.to_string(),
                p.write_bytes_per_s.to_string(),
                p.threads.to_string(),
                p.cmdline.clone(),
            ])?;
        }
        w.flush()?;
        return Ok(());
    }
    writeln!(
        out,
        "{}  {}  ({} sample)  load {:.2}  cpu {}  mem used {}  {} processes\n",
        time::format_local(head.ts_ms),
        head.host,
        head.level,
        head.load1,
        output::pct(head.cpu_busy_pct),
        output::bytes(head.mem_used_bytes as f64),
        head.procs_total
    )?;
    let mut t = output::table(&output::PROCESS_COLUMNS);
    for p in &rows {
        let label =
            output::ProcessLabel::new(p.pid, &p.name, Some(&p.user)).with_cmdline(Some(&p.cmdline));
        t.add_row(output::process_cells(
            &label,
            &output::ProcessNumbers {
                state: p.state.clone(),
                cpu_pct: p.cpu_pct,
                rss_bytes: p.rss_bytes as f64,
                read_bytes_per_s: p.read_bytes_per_s as f64,
                write_bytes_per_s: p.write_bytes_per_s as f64,
                net_bytes_per_s: net_rate(
                    p.net_tx_bytes_per_s.map(|v| v as f64),
                    p.net_rx_bytes_per_s.map(|v| v as f64),
                ),
                threads: p.threads,
            },
        ));
    }
    output::align_right(&mut t, &output::PROCESS_NUMERIC);
    writeln!(out, "{}", output::render(&t))?;
    Ok(())
}

/// A process's tx + rx, when network accounting saw it.
fn net_rate(tx: Option<f64>, rx: Option<f64>) -> Option<f64> {
    match (tx, rx) {
        (None, None) => None,
        (tx, rx) => Some(tx.unwrap_or(0.0) + rx.unwrap_or(0.0)),
    }
}

fn cmd_sql(db: &Path, sql: &str, f: FormatArgs) -> anyhow::Result<()> {
    let conn = open(db)?;
    let r = query::run_sql(&conn, sql).with_context(|| format!("{}: query", db.display()))?;
    let mut out = std::io::stdout().lock();
    if f.json {
        let rows: Vec<serde_json::Value> = r
            .rows
            .iter()
            .map(|row| {
                serde_json::Value::Object(
                    r.columns
                        .iter()
                        .zip(row)
                        .map(|(c, v)| (c.clone(), output::value_json(v)))
                        .collect(),
                )
            })
            .collect();
        serde_json::to_writer_pretty(&mut out, &rows)?;
        writeln!(out)?;
    } else if f.csv {
        let mut w = csv::Writer::from_writer(out);
        w.write_record(&r.columns)?;
        for row in &r.rows {
            w.write_record(row.iter().map(output::value_text))?;
        }
        w.flush()?;
    } else {
        let cols: Vec<&str> = r.columns.iter().map(String::as_str).collect();
        let mut t = output::table(&cols);
        for row in &r.rows {
            t.add_row(row.iter().map(output::value_text));
        }
        let numeric: Vec<usize> = (0..cols.len())
            .filter(|&i| {
                r.rows.iter().all(|row| {
                    matches!(
                        row[i],
                        rusqlite::types::Value::Integer(_)
                            | rusqlite::types::Value::Real(_)
                            | rusqlite::types::Value::Null
                    )
                })
            })
            .collect();
        output::align_right(&mut t, &numeric);
        writeln!(out, "{}", output::render(&t))?;
        writeln!(
            out,
            "({} row{})",
            r.rows.len(),
            if r.rows.len() == 1 { "" } else { "s" }
        )?;
    }
    Ok(())
}

fn cmd_alert_test(config: Option<&Path>, email: bool, desktop: bool) -> anyhow::Result<()> {
    use crate::alert::outbox::enabled_channels;
    use crate::store::outbox::Channel;

    let cfg = Config::load_or_default(config)?;
    let where_ = config.map_or("the embedded default config".to_string(), |p| {
        p.display().to_string()
    });
    let channels: Vec<Channel> = if email || desktop {
        Channel::ALL
            .into_iter()
            .filter(|c| match c {
                Channel::Email => email,
                Channel::Desktop => desktop,
            })
            .collect()
    } else {
        enabled_channels(&cfg)
    };
    if channels.is_empty() {
        bail!(
            "no alert channel is enabled in {where_}: set [email] enabled = true or [desktop]              enabled = true, or name one with --email / --desktop"
        );
    }
    let host = crate::collect::host_name(&cfg.sampler);
    let message =
        crate::alert::compose::test_message(&host, jiff::Timestamp::now().as_millisecond());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let mut out = std::io::stdout().lock();
    let mut failed = 0;
    for channel in &channels {
        let name = channel.as_str();
        let enabled = match channel {
            Channel::Email => cfg.email.enabled,
            Channel::Desktop => cfg.desktop.enabled,
        };
        if !enabled {
            writeln!(
                out,
                "{name:8} note: [{name}] enabled = false, so alerts do not use this channel"
            )?;
        }
        let started = std::time::Instant::now();
        let result = match channel {
            Channel::Email => {
                if let Ok(warnings) = crate::alert::email_preflight(&cfg.email) {
                    for w in warnings {
                        writeln!(out, "{name:8} warning: {w}")?;
                    }
                }
                rt.block_on(crate::alert::send_email(&cfg.email, &message))
                    .map(|()| {
                        format!(
                            "delivered to {} via {}:{} (tls = {})",
                            cfg.email.to.join(", "),
                            cfg.email.server,
                            cfg.email.effective_port(),
                            cfg.email.tls.as_str()
                        )
                    })
            }
            Channel::Desktop => rt
                .block_on(crate::alert::send_desktop(&cfg.desktop, &message))
                .map(|()| "delivered: the notification server accepted it".to_string()),
        };
        let took = started.elapsed().as_secs_f64();
        match result {
            Ok(what) => writeln!(out, "{name:8} {what} ({took:.1}s)")?,
            Err(e) => {
                failed += 1;
                writeln!(out, "{name:8} FAILED: {e} ({took:.1}s)")?;
            }
        }
    }
    out.flush()?;
    if failed > 0 {
        bail!(
            "the test message failed on {failed} of {} channel(s)",
            channels.len()
        );
    }
    Ok(())
}

fn cmd_status(db: &Path, json: bool) -> anyhow::Result<()> {
    let conn = open(db)?;
    let now = jiff::Timestamp::now().as_millisecond();
    let day_ago = now - 86_400_000;
    let st = query::status(&conn, day_ago)?;
    // A store older than the outbox (schema v1) has none to show.
    let alerts = if st.schema_version >= 2 {
        Some(
            crate::store::outbox::summary(&conn, day_ago)
                .with_context(|| format!("{}: reading the alert outbox", db.display()))?,
        )
    } else {
        None
    };
    let wal = std::fs::metadata(format!("{}-wal", db.display()))
        .map(|m| m.len() as i64)
        .unwrap_or(0);
    let alive = st.daemon_pid.is_some_and(|pid| {
        // SAFETY: kill with signal 0 only checks that the pid exists.
        let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
        rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    });
    let interval = st.interval_ms.unwrap_or(10_000);
    let age = st.last_ts_ms.map(|t| now - t);
    let recording = alive && age.is_some_and(|a| a <= 2 * interval + 1000);
    let rule_states = crate::store::incident::rule_states(&conn)?;
    let open = crate::store::incident::list_incidents(&conn, None, None, true)?;
    if json {
        let mut v = serde_json::to_value(&st)?;
        v["rules"] = serde_json::to_value(&rule_states)?;
        v["open_incidents"] = serde_json::to_value(&open)?;
        v["recording"] = recording.into();
        v["last_sample_age_ms"] = age.into();
        v["wal_bytes"] = wal.into();
        v["alerts"] = serde_json::to_value(&alerts)?;
        serde_json::to_writer_pretty(std::io::stdout().lock(), &v)?;
        println!();
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "store      {} (schema v{})",
        db.display(),
        st.schema_version
    )?;
    writeln!(
        out,
        "recording  {}",
        match (recording, st.daemon_pid) {
            (true, Some(pid)) => format!(
                "yes (pid {pid}, every {})",
                crate::daemon::human_ms(interval)
            ),
            (false, Some(pid)) if alive =>
                format!("NO: pid {pid} is alive but the last sample is late"),
            _ => "NO: no daemon running".to_string(),
        }
    )?;
    match (st.last_ts_ms, age) {
        (Some(t), Some(a)) => writeln!(
            out,
            "last       {} ({} ago, {})",
            time::format_local(t),
            crate::daemon::human_ms(a),
            st.last_level.map_or("?", |l| l.as_str())
        )?,
        _ => writeln!(out, "last       no samples yet")?,
    }
    writeln!(
        out,
        "samples    {}{}",
        st.samples,
        st.first_ts_ms
            .map(|t| format!(" since {}", time::format_local(t)))
            .unwrap_or_default()
    )?;
    writeln!(
        out,
        "size       {} (+ {} WAL)",
        output::bytes(st.db_bytes as f64),
        output::bytes(wal as f64)
    )?;
    let gaps: Vec<_> = st
        .events
        .iter()
        .filter(|e| matches!(e.kind.as_str(), "gap" | "dropped" | "error"))
        .collect();
    writeln!(out, "gaps (24h) {}", gaps.len())?;
    for e in gaps.iter().rev().take(10) {
        writeln!(
            out,
            "  {}  {}: {}",
            time::format_local(e.ts_ms),
            e.kind,
            e.message
        )?;
    }
    let firing: Vec<String> = rule_states
        .iter()
        .filter(|r| r.status != "inactive" || r.disabled)
        .map(|r| {
            format!(
                "{} {}{}",
                r.rule,
                if r.disabled { "disabled" } else { &r.status },
                r.since_ms
                    .map(|t| format!(" since {}", time::format_local(t)))
                    .unwrap_or_default()
            )
        })
        .collect();
    writeln!(
        out,
        "rules      {} ({} not inactive){}",
        rule_states.len(),
        firing.len(),
        if firing.is_empty() {
            String::new()
        } else {
            format!(": {}", firing.join("; "))
        }
    )?;
    writeln!(out, "incidents  {} open", open.len())?;
    for i in &open {
        writeln!(
            out,
            "  {}  {} ({}): {}",
            i.id,
            i.rule,
            time::format_local(i.opened_ms),
            i.title
        )?;
    }
    if let Some(a) = &alerts {
        writeln!(
            out,
            "alerts     {} undelivered, {} held for a digest, {} given up (24h)",
            a.undelivered, a.held, a.failed_recently
        )?;
        for u in &a.oldest_undelivered {
            writeln!(
                out,
                "  #{} {}  {} {} {:?}: {} attempt(s){}{}",
                u.id,
                time::format_local(u.created_ms),
                u.channel,
                u.kind,
                u.subject,
                u.attempts,
                if u.status == "pending" {
                    format!(", next {}", time::format_local(u.next_attempt_ms))
                } else {
                    ", sending now".to_string()
                },
                u.last_error
                    .as_deref()
                    .map(|e| format!("; last error: {e}"))
                    .unwrap_or_default()
            )?;
        }
        if let Some(e) = &a.last_error {
            writeln!(
                out,
                "  last error {}  {} alert {} ({}): {}",
                time::format_local(e.ts_ms),
                e.channel,
                e.alert_id,
                e.result,
                e.error.as_deref().unwrap_or("")
            )?;
        }
        if let Some(s) = &a.last_sent {
            writeln!(
                out,
                "  last sent  {}  {} alert {}",
                time::format_local(s.ts_ms),
                s.channel,
                s.alert_id
            )?;
        }
    }
    if !st.oom_kills.is_empty() {
        writeln!(out, "OOM kills (24h)")?;
        for (ts, pid, name, rss) in &st.oom_kills {
            writeln!(
                out,
                "  {}  the kernel killed {name} (pid {pid}, rss {})",
                time::format_local(*ts),
                output::bytes(*rss as f64)
            )?;
        }
    }
    Ok(())
}
