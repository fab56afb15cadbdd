//! Times `hogtrap replay` stepping through a store: opens it read-only, starts at the sample
//! nearest the middle of the record, then steps forward N samples, each step being what the
//! `t` key does (read the next sample, its process rows and open incidents, rebuild the
//! table) plus drawing the screen into an in-memory 80×24 terminal. Prints each step's time.
//!
//! Usage: replay_steps DB [STEPS] [COLS] [ROWS]   (defaults: 100 steps, 80×24)

use std::time::Instant;

use hogtrap::cli::replay::{app::App, keys::Action, ui, view::Mode};
use hogtrap::store::replay as store;
use ratatui::{backend::TestBackend, Terminal};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let db = args
        .get(1)
        .expect("usage: replay_steps DB [STEPS] [COLS] [ROWS]");
    let steps: usize = args.get(2).map_or(Ok(100), |s| s.parse())?;
    let cols: u16 = args.get(3).map_or(Ok(80), |s| s.parse())?;
    let rows: u16 = args.get(4).map_or(Ok(24), |s| s.parse())?;

    let t = Instant::now();
    let conn = hogtrap::store::open_read_only(std::path::Path::new(db))?;
    let first = store::first_sample(&conn)?.expect("an empty store");
    let last = store::last_sample(&conn)?.expect("an empty store");
    let mid = store::sample_near(&conn, (first.ts_ms + last.ts_ms) / 2)?.unwrap();
    let frame = store::frame(&conn, mid)?.unwrap();
    let mut app = App::new(&conn, frame, Mode::Replay);
    let mut term = Terminal::new(TestBackend::new(cols, rows))?;
    term.draw(|f| ui::draw(f, &app, false))?;
    let open_ms = t.elapsed().as_secs_f64() * 1000.0;
    println!(
        "open + first screen: {open_ms:.2} ms ({} process rows)",
        app.rows.len()
    );

    let mut times = Vec::with_capacity(steps);
    for i in 0..steps {
        let t = Instant::now();
        app.apply(Action::Step(true))?;
        term.draw(|f| ui::draw(f, &app, false))?;
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        times.push(ms);
        println!(
            "step {:3}: {ms:7.2} ms  sample #{} ({} rows)",
            i + 1,
            app.frame.position,
            app.rows.len()
        );
    }
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    let pct = |p: f64| sorted[((sorted.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "{steps} steps: median {:.2} ms, p95 {:.2} ms, max {:.2} ms, mean {:.2} ms",
        pct(0.5),
        pct(0.95),
        sorted[sorted.len() - 1],
        times.iter().sum::<f64>() / times.len() as f64
    );
    Ok(())
}
