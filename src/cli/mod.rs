//! The command line: the clap definitions of every command and the dispatch to them, one
//! file per command, each with its `Args` and a `run(&Ctx, Args)`. [`Ctx`] holds the global
//! options and resolves the config and the store once; every command that reads the record
//! opens the store read-only through it. Errors reach the user as one line and a non-zero
//! exit code. `hogtrap run` is not dispatched here: `main.rs` hands it to the daemon.

mod alert;
mod ctx;
mod incidents;
mod net;
pub mod output;
mod prune;
pub mod replay;
mod report;
mod rules;
mod sample;
mod show;
mod sql;
mod status;
pub mod time;
mod top;
mod vocab;

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub use ctx::{no_samples, Ctx};

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

#[cfg(test)]
impl Cli {
    /// The command line `hogtrap ARGS...`, parsed as `main` parses it (for the parse tests).
    pub(crate) fn parse_args(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("hogtrap").chain(args.iter().copied()))
    }
}

/// `hogtrap run` goes to the daemon (`main.rs` wires it); every other command is answered here.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the recorder in the foreground (SIGTERM/SIGINT: stop after the sample in flight; SIGHUP: reload).
    Run,
    #[command(flatten)]
    Cli(CliCommand),
}

#[derive(Subcommand, Debug)]
pub enum CliCommand {
    /// Take one sample now and print it: exactly what rules see.
    Sample(sample::Args),
    /// What was running at a time, or the top consumers over a range.
    Top(top::Args),
    /// Which processes moved network bytes, with remote endpoints where detail was captured.
    Net(net::Args),
    /// Run a read-only SQL query against the store.
    Sql(sql::Args),
    /// The incident list.
    Incidents(incidents::Args),
    /// One incident's story: rule, severity, peaks, culprits, timeline, captures, alerts.
    Show(show::Args),
    /// One self-contained HTML page about an incident or a range: charts, culprits, alerts, connections.
    Report(report::Args),
    /// Check, test and backtest the Lua rules.
    #[command(subcommand)]
    Rules(rules::Command),
    /// Alert channels: send a test message.
    Alert {
        #[command(subcommand)]
        command: alert::Command,
    },
    /// Apply the [retention] policies now (or say what would go with --dry-run): what goes
    /// and what stays, by reason and table.
    Prune(prune::Args),
    /// Is the daemon recording; last sample's age; gaps; DB size; undelivered alerts.
    Status(status::Args),
    /// Browse the record in a full-screen terminal view, sample by sample (`?` for the keys).
    Replay(replay::Args),
    /// The same view on the running recorder, following each new sample.
    Live(replay::LiveArgs),
}

/// `--json`, on the commands whose other output is text for people.
#[derive(Args, Debug, Clone, Copy)]
pub struct JsonFlag {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
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

/// Parses the command line (printing help or a usage error and exiting, as clap does), then
/// starts logging. `main.rs` sends [`Command::Run`] to the daemon and the rest to [`run`].
pub fn parse() -> Cli {
    let cli = Cli::parse();
    init_logging();
    cli
}

/// Turns a command's outcome into the exit code; an error reaches the user as one line.
pub fn exit_code(result: anyhow::Result<()>) -> std::process::ExitCode {
    match result {
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

/// Runs one command (all but `run`, which belongs to the daemon).
pub fn run(ctx: &Ctx, command: CliCommand) -> anyhow::Result<()> {
    match command {
        CliCommand::Sample(args) => sample::run(ctx, args),
        CliCommand::Top(args) => top::run(ctx, args),
        CliCommand::Net(args) => net::run(ctx, args),
        CliCommand::Sql(args) => sql::run(ctx, args),
        CliCommand::Incidents(args) => incidents::run(ctx, args),
        CliCommand::Show(args) => show::run(ctx, args),
        CliCommand::Report(args) => report::run(ctx, args),
        CliCommand::Rules(command) => rules::run(ctx, command),
        CliCommand::Alert { command } => alert::run(ctx, command),
        CliCommand::Prune(args) => prune::run(ctx, args),
        CliCommand::Status(args) => status::run(ctx, args),
        CliCommand::Replay(args) => replay::run(ctx, args),
        CliCommand::Live(args) => replay::live(ctx, args),
    }
}
