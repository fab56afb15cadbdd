//! `hogtrap replay` and `hogtrap live`: the record in a full-screen terminal view, one
//! sample at a time, as `atop -r` reads its files. `view` decides what a sample shows
//! (pure, unit-tested), `keys` maps keys to actions, `app` carries them out on the
//! read-only store, `ui` draws with ratatui. Off a terminal (a pipe, a script) the first
//! screen is printed as text instead. This file owns the terminal: it enters raw
//! mode and the alternate screen, and always leaves them, on `q`, Ctrl-C, SIGTERM or an
//! error; when the terminal closes under it (SIGHUP, or the tty hangs up), it ends.

pub mod app;
pub mod keys;
pub mod ui;
pub mod view;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use crossterm::event::{self, Event};

use super::{time, Ctx};
use crate::model::TimestampMs;
use crate::store::replay as store;
use app::{App, Overlay};
use view::Mode;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Start at this moment: "03:12", "10m ago", "-1h", "2026-11-26 03:12", RFC 3339.
    /// Without it (and without ID): the newest sample.
    #[arg(long, allow_hyphen_values = true, value_parser = time::arg, conflicts_with = "id")]
    pub at: Option<TimestampMs>,
    /// Start at the opening sample of this incident (`hogtrap incidents` lists them).
    pub id: Option<i64>,
}

#[derive(clap::Args, Debug)]
pub struct LiveArgs {}

/// How long the view waits for a key before it looks for a new sample (live).
const TICK: Duration = Duration::from_millis(250);

/// Set by SIGHUP: the terminal is gone.
static HUNG_UP: AtomicBool = AtomicBool::new(false);
/// Set by SIGTERM: leave like `q` does.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(sig: libc::c_int) {
    if sig == libc::SIGHUP {
        HUNG_UP.store(true, Ordering::SeqCst);
    } else {
        STOP.store(true, Ordering::SeqCst);
    }
}

/// Whether our terminal has hung up (its other end closed).
fn terminal_hung_up() -> bool {
    let mut fd = libc::pollfd {
        fd: libc::STDIN_FILENO,
        events: 0,
        revents: 0,
    };
    // SAFETY: one valid pollfd, no wait.
    let n = unsafe { libc::poll(&mut fd, 1, 0) };
    n > 0 && fd.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0
}

/// Ends the process when the terminal goes away. The key reader cannot be relied on for
/// this: crossterm's reader spins on a hung-up terminal instead of returning. Nothing is
/// left to restore on a terminal that is gone, and the store is only read.
fn watch_for_hangup() {
    std::thread::spawn(|| loop {
        std::thread::sleep(TICK);
        if HUNG_UP.load(Ordering::SeqCst) || terminal_hung_up() {
            std::process::exit(0);
        }
    });
}

pub fn run(ctx: &Ctx, a: Args) -> anyhow::Result<()> {
    let store = ctx.open_store()?;
    let (db, conn) = (&store.path, &store.conn);
    let start = match (a.id, a.at) {
        (Some(id), _) => store::incident_opening(conn, id)
            .with_context(|| format!("{}: reading incident {id}", db.display()))?
            .with_context(|| {
                format!(
                    "no incident {id} with a sample at or after its opening in {}",
                    db.display()
                )
            })?,
        (None, Some(at)) => store::sample_near(conn, at)?
            .with_context(|| format!("no samples in {}", db.display()))?,
        (None, None) => {
            store::last_sample(conn)?.with_context(|| format!("no samples in {}", db.display()))?
        }
    };
    session(conn, start, Mode::Replay)
}

pub fn live(ctx: &Ctx, _a: LiveArgs) -> anyhow::Result<()> {
    let store = ctx.open_store()?;
    let (db, conn) = (&store.path, &store.conn);
    let start = store::last_sample(conn)?.with_context(|| {
        format!(
            "no samples in {} yet: is the recorder running (hogtrap status)?",
            db.display()
        )
    })?;
    session(conn, start, Mode::Live { following: true })
}

fn session(conn: &rusqlite::Connection, start: store::SampleRef, mode: Mode) -> anyhow::Result<()> {
    use std::io::{IsTerminal, Write};
    let frame = store::frame(conn, start)?.context("the sample vanished while opening it")?;
    let mut app = App::new(conn, frame, mode);
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        // A pipe or a script: the first screen, as text, once.
        let width = std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(120u16)
            .clamp(40, 400);
        std::io::stdout().write_all(ui::text_screen(&app, width)?.as_bytes())?;
        return Ok(());
    }
    let colour = ui::colour_allowed();
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    let handler: extern "C" fn(libc::c_int) = on_signal;
    unsafe {
        libc::signal(libc::SIGHUP, handler as libc::sighandler_t);
        libc::signal(libc::SIGTERM, handler as libc::sighandler_t);
    }
    watch_for_hangup();
    let mut terminal = ratatui::try_init().context("cannot set up the terminal")?;
    let result = event_loop(&mut terminal, &mut app, colour);
    let restored = ratatui::try_restore();
    result?;
    restored.context("cannot restore the terminal")?;
    Ok(())
}

fn event_loop(
    terminal: &mut ratatui::DefaultTerminal,
    app: &mut App,
    colour: bool,
) -> anyhow::Result<()> {
    while !app.quit && !STOP.load(Ordering::SeqCst) {
        terminal.draw(|f| ui::draw(f, app, colour))?;
        if !event::poll(TICK)? {
            app.refresh()?;
            continue;
        }
        if let Event::Key(k) = event::read()? {
            let action = match &mut app.overlay {
                Overlay::Prompt { text, .. } => keys::prompt_action(k, text),
                Overlay::None => keys::action(k),
                Overlay::Help | Overlay::Connections { .. } => keys::overlay_action(k),
            };
            app.apply(action)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::cli::{Cli, CliCommand, Command};

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::parse_args(args)
    }

    #[test]
    fn replay_takes_a_time_with_a_hyphen_or_an_incident() {
        let Command::Cli(CliCommand::Replay(a)) =
            parse(&["replay", "--at", "-10m"]).unwrap().command
        else {
            panic!("not replay")
        };
        let ago = crate::cli::time::now() - a.at.unwrap();
        assert!((ago - 600_000).abs() < 60_000, "{ago}");
        let Command::Cli(CliCommand::Replay(a)) = parse(&["replay", "7"]).unwrap().command else {
            panic!("not replay")
        };
        assert_eq!((a.id, a.at), (Some(7), None));
        let e = parse(&["replay", "--at", "-10m", "7"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("--at"), "{e}");
        let e = parse(&["replay", "--at", "yesterday-ish"])
            .unwrap_err()
            .to_string();
        assert!(e.lines().next().unwrap().contains("yesterday-ish"), "{e}");
        assert!(parse(&["live"]).is_ok());
    }
}
