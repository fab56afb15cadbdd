//! Classification: the fate of each sample, decided in time order. Pure logic, no SQL.

use std::collections::{HashMap, VecDeque};

use super::pins::Pins;
use super::{LevelFilter, PrunePolicy, RetentionPolicy};
use crate::format::human_ms;
use crate::model::TimestampMs;

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Meta {
    pub(super) id: i64,
    pub(super) ts_ms: i64,
    pub(super) host_id: i64,
    pub(super) level: i64,
    pub(super) load1: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fate {
    Keep,
    Delete(usize),
    Demote(usize),
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Decision {
    /// The sample it is about.
    pub(super) meta: Meta,
    pub(super) pinned: bool,
    pub(super) fate: Fate,
}

/// What to classify by.
#[derive(Debug, Clone)]
pub(super) enum Rules {
    Retention {
        baseline_cut: i64,
        detail_cut: i64,
        /// (aligned cut, bucket ms)
        downsample: Option<(i64, i64)>,
    },
    Policy {
        cut: i64,
        level: LevelFilter,
        load_below: Option<f64>,
        keep_incidents: bool,
    },
}

const R_AGE: usize = 0;
const R_DETAIL: usize = 1;
const R_THIN: usize = 2;
const R_POLICY: usize = 0;

pub(super) struct Classifier<'a> {
    rules: Rules,
    pins: &'a Pins,
    bucket: Option<i64>,
    buffer: Vec<(Meta, bool)>,
    pub(super) out: VecDeque<Decision>,
}

impl<'a> Classifier<'a> {
    pub(super) fn new(rules: Rules, pins: &'a Pins) -> Classifier<'a> {
        Classifier {
            rules,
            pins,
            bucket: None,
            buffer: Vec::new(),
            out: VecDeque::new(),
        }
    }

    /// The newest time any rule looks at: newer samples are kept.
    pub(super) fn scan_until(&self) -> i64 {
        match self.rules {
            Rules::Retention {
                baseline_cut,
                detail_cut,
                downsample,
            } => baseline_cut
                .max(detail_cut)
                .max(downsample.map_or(i64::MIN, |d| d.0)),
            Rules::Policy { cut, .. } => cut,
        }
    }

    fn emit(&mut self, m: Meta, fate: Fate, pinned: bool) {
        self.out.push_back(Decision {
            meta: m,
            pinned,
            fate,
        });
    }

    /// Samples must come in (ts_ms, id) order.
    pub(super) fn push(&mut self, m: Meta) {
        let open = self.pins.is_open(m.id, m.ts_ms);
        let pinned = !open && self.pins.is_closed(m.id, m.ts_ms);
        match self.rules.clone() {
            Rules::Policy {
                cut,
                level,
                load_below,
                keep_incidents,
            } => {
                let fate = if open
                    || (pinned && keep_incidents)
                    || m.ts_ms >= cut
                    || !level.matches(m.level)
                    || load_below.is_some_and(|x| m.load1.is_nan() || m.load1 >= x)
                {
                    Fate::Keep
                } else {
                    Fate::Delete(R_POLICY)
                };
                self.emit(m, fate, pinned);
            }
            Rules::Retention {
                baseline_cut,
                detail_cut,
                downsample,
            } => {
                if let Some((_, bucket_ms)) = downsample {
                    let b = m.ts_ms.div_euclid(bucket_ms);
                    if self.bucket.is_some_and(|cur| cur != b) {
                        self.flush_bucket();
                    }
                }
                if open || pinned {
                    return self.emit(m, Fate::Keep, pinned);
                }
                if m.ts_ms < baseline_cut {
                    return self.emit(m, Fate::Delete(R_AGE), false);
                }
                let demote = m.level == 1 && m.ts_ms < detail_cut;
                match downsample {
                    Some((ds_cut, bucket_ms)) if (m.level == 0 || demote) && m.ts_ms < ds_cut => {
                        self.bucket = Some(m.ts_ms.div_euclid(bucket_ms));
                        self.buffer.push((m, demote));
                    }
                    _ => {
                        let fate = if demote {
                            Fate::Demote(R_DETAIL)
                        } else {
                            Fate::Keep
                        };
                        self.emit(m, fate, false);
                    }
                }
            }
        }
    }

    /// One bucket is complete: per host, the sample with the highest load1 stays (the
    /// earliest among equals).
    fn flush_bucket(&mut self) {
        self.bucket = None;
        let buf = std::mem::take(&mut self.buffer);
        let mut best: HashMap<i64, (f64, i64)> = HashMap::new();
        for (m, _) in &buf {
            let load = if m.load1.is_nan() { f64::MIN } else { m.load1 };
            match best.get(&m.host_id) {
                Some(&(l, _)) if l >= load => {}
                _ => {
                    best.insert(m.host_id, (load, m.id));
                }
            }
        }
        for (m, demote) in buf {
            let fate = if best.get(&m.host_id).map(|b| b.1) == Some(m.id) {
                if demote {
                    Fate::Demote(R_DETAIL)
                } else {
                    Fate::Keep
                }
            } else {
                Fate::Delete(R_THIN)
            };
            self.emit(m, fate, false);
        }
    }

    pub(super) fn finish(&mut self) {
        self.flush_bucket();
    }
}

pub(super) fn reasons(
    rules: &Rules,
    r: &RetentionPolicy,
    policy: Option<&PrunePolicy>,
) -> Vec<String> {
    match (rules, policy) {
        (Rules::Policy { .. }, Some(p)) => vec![p.reason()],
        _ => vec![
            format!("older than {}", human_ms(r.baseline.as_millis() as i64)),
            format!(
                "detail older than {}: made baseline",
                human_ms(r.detail.as_millis() as i64)
            ),
            match r.downsample {
                Some((a, t)) => format!(
                    "thinned to one per {} after {}",
                    human_ms(t.as_millis() as i64),
                    human_ms(a.as_millis() as i64)
                ),
                None => "thinned".into(),
            },
        ],
    }
}

pub(super) fn retention_rules(r: &RetentionPolicy, now: TimestampMs) -> Rules {
    Rules::Retention {
        baseline_cut: now - r.baseline.as_millis() as i64,
        detail_cut: now - r.detail.as_millis() as i64,
        downsample: r.downsample.map(|(after, to)| {
            let to = (to.as_millis() as i64).max(1);
            let cut = (now - after.as_millis() as i64).div_euclid(to) * to;
            (cut, to)
        }),
    }
}

pub(super) fn policy_rules(p: &PrunePolicy, now: TimestampMs) -> Rules {
    Rules::Policy {
        cut: now - p.older_than.as_millis() as i64,
        level: p.level,
        load_below: p.load_below,
        keep_incidents: p.keep_incidents,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(id: i64, ts: i64, level: i64, load1: f64) -> Meta {
        Meta {
            id,
            ts_ms: ts,
            host_id: 1,
            level,
            load1,
        }
    }

    /// Every sample of `metas` through a classifier of `rules`, and the fate of each, in the
    /// order the classifier decided.
    fn classify(
        rules: Rules,
        pins: &Pins,
        metas: impl IntoIterator<Item = Meta>,
    ) -> Vec<(i64, Fate)> {
        let mut c = Classifier::new(rules, pins);
        for m in metas {
            c.push(m);
        }
        c.finish();
        c.out.drain(..).map(|d| (d.meta.id, d.fate)).collect()
    }

    #[test]
    fn retention_classifies_by_age_level_and_pins() {
        let pins = Pins {
            open: vec![(900, i64::MAX)],
            closed: vec![(100, 150)],
            linked_closed: [7].into_iter().collect(),
            ..Default::default()
        };
        let rules = Rules::Retention {
            baseline_cut: 200,
            detail_cut: 500,
            downsample: None,
        };
        let fates = classify(
            rules,
            &pins,
            [
                meta(1, 50, 0, 0.0),  // old: deleted
                meta(2, 120, 1, 0.0), // pinned by a closed window
                meta(7, 180, 0, 0.0), // pinned by its link
                meta(3, 300, 1, 0.0), // detail past its age: demoted
                meta(4, 300, 0, 0.0), // baseline, young enough
                meta(5, 950, 1, 9.0), // open incident
            ],
        );
        assert_eq!(
            fates,
            vec![
                (1, Fate::Delete(R_AGE)),
                (2, Fate::Keep),
                (7, Fate::Keep),
                (3, Fate::Demote(R_DETAIL)),
                (4, Fate::Keep),
                (5, Fate::Keep),
            ]
        );
    }

    #[test]
    fn downsampling_keeps_the_highest_load_per_bucket() {
        let pins = Pins::default();
        let rules = Rules::Retention {
            baseline_cut: 0,
            detail_cut: 0,
            downsample: Some((300, 100)),
        };
        let fates = classify(
            rules,
            &pins,
            [
                meta(1, 100, 0, 1.0),
                meta(2, 110, 0, 3.0),
                meta(3, 120, 0, 3.0), // tie: the earlier stays
                meta(4, 200, 0, 0.5),
                meta(5, 250, 0, 0.1),
                meta(6, 310, 0, 0.1), // past the cut: kept
            ],
        );
        assert_eq!(
            fates,
            vec![
                (1, Fate::Delete(R_THIN)),
                (2, Fate::Keep),
                (3, Fate::Delete(R_THIN)),
                (4, Fate::Keep),
                (5, Fate::Delete(R_THIN)),
                (6, Fate::Keep),
            ]
        );
    }

    #[test]
    fn policy_honours_load_level_and_incidents() {
        let pins = Pins {
            open: vec![(400, i64::MAX)],
            closed: vec![(100, 150)],
            ..Default::default()
        };
        let rules = |keep| Rules::Policy {
            cut: 1000,
            level: LevelFilter::Any,
            load_below: Some(1.4),
            keep_incidents: keep,
        };
        for keep in [true, false] {
            let fates = classify(
                rules(keep),
                &pins,
                [
                    meta(1, 50, 0, 1.0),
                    meta(2, 60, 1, 1.4),
                    meta(3, 120, 0, 0.2),
                    meta(4, 450, 0, 0.2),
                    meta(5, 1100, 0, 0.2),
                ],
            );
            let pinned_fate = if keep {
                Fate::Keep
            } else {
                Fate::Delete(R_POLICY)
            };
            assert_eq!(
                fates,
                vec![
                    (1, Fate::Delete(R_POLICY)),
                    (2, Fate::Keep),
                    (3, pinned_fate),
                    (4, Fate::Keep),
                    (5, Fate::Keep),
                ]
            );
        }
    }
}
