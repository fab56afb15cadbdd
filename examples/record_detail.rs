//! Records detail samples (every process, extras, connections) through the real collector and
//! store, as a capture would, to measure what detail costs on disk (docs/retention.md). The
//! daemon itself records baseline samples until captures exist.
//!
//! Usage: record_detail DB [INTERVAL_MS] [SAMPLES]

use hogtrap::collect::Collector;
use hogtrap::config::Source;
use hogtrap::model::Level;
use hogtrap::store::Store;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let db = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: record_detail DB [INTERVAL_MS] [SAMPLES]"))?;
    let interval_ms: u64 = args.next().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let samples: u32 = args.next().and_then(|v| v.parse().ok()).unwrap_or(120);
    let mut store = Store::open(db.as_ref(), std::time::Duration::from_secs(1))?;
    let mut collector = Collector::new(Source::Auto);
    let host = hogtrap::collect::host_name(&hogtrap::config::Sampler::default());
    let interval = std::time::Duration::from_millis(interval_ms);
    let t0 = std::time::Instant::now();
    for k in 1..=samples {
        std::thread::sleep(
            (t0 + interval * k).saturating_duration_since(std::time::Instant::now()),
        );
        let s = collector.sample(Level::Detail, &host);
        store.write_sample(&s)?;
    }
    Ok(())
}
