//! Time-series charts as inline SVG (for an HTML page: no namespace declaration, styled by the
//! page's CSS classes): lines or stacked areas over a time window, with shaded
//! bands (incidents, detail captures, holes in the record), nice axis ticks in the series'
//! unit and local time.
//!
//! Hand-written rather than a charting crate: the page must be one self-contained file that
//! prints well and reads the same everywhere, so the charts are a few hundred bytes of SVG
//! per series that CSS styles (`@media print` included), with `<title>` tooltips and no fonts
//! embedded. plotters, the well-kept pure-Rust choice, draws to an SVG string too, but
//! with inline styles and its own text layout, no CSS classes and no tooltips, and it would
//! still need our own downsampling, gaps and bands. This module is ~500 lines with tests.
//!
//! Guarantees: a chart never draws a line across a hole in the record (see [`gap_flags`]: the
//! line breaks, and the page shades the hole "no samples"); a
//! window with more samples than `MAX_POINTS` is bucketed (lines keep each bucket's peak,
//! stacked areas its mean, and the chart says so); every text is escaped.

use std::fmt::Write;

use jiff::tz::TimeZone;

use crate::format::escape_html as escape;
use crate::model::TimestampMs;

/// More points than this (about one per horizontal pixel) are bucketed.
pub const MAX_POINTS: usize = 600;

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 230.0;
const LEFT: f64 = 58.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 24.0;

/// What the y values are, for tick labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Plain,
    Percent,
    Bytes,
    BytesPerSecond,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub label: String,
    /// A CSS color.
    pub color: String,
    /// One value per x of the chart; `None` where the series has no value.
    pub values: Vec<Option<f64>>,
    pub dashed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BandKind {
    /// An incident: shaded over the whole height, labelled.
    Incident,
    /// A detail capture: a strip along the bottom.
    Capture,
    /// No samples recorded.
    NoData,
}

/// How strongly an incident band is drawn: the incident a report is about stands out, the
/// others in its window stay visible but quiet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Normal,
    Focus,
    Faded,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Band {
    pub from_ms: TimestampMs,
    pub to_ms: TimestampMs,
    pub kind: BandKind,
    pub tone: Tone,
    /// Short text drawn on incident bands; the tooltip of every band.
    pub label: String,
}

#[derive(Debug, Clone)]
pub struct Chart {
    /// What the chart shows, for screen readers.
    pub title: String,
    /// The window, inclusive.
    pub from_ms: TimestampMs,
    pub to_ms: TimestampMs,
    /// Sample times, oldest first.
    pub x: Vec<TimestampMs>,
    pub series: Vec<Series>,
    pub unit: Unit,
    /// Stack the series as areas (they are parts of one whole).
    pub stacked: bool,
    /// The y axis reaches at least this high (e.g. 100 for CPU %).
    pub y_at_least: f64,
    /// A dashed horizontal guide with its label (e.g. load per CPU 1.0, "saturated").
    pub guide: Option<(f64, String)>,
    pub bands: Vec<Band>,
    pub tz: TimeZone,
}

/// The samples the chart draws: either the raw ones or buckets of them.
struct Frame {
    x: Vec<f64>,
    /// `true` where the line must break before this point.
    gap_before: Vec<bool>,
    /// Per series, per point.
    values: Vec<Vec<Option<f64>>>,
    bucket_ms: Option<i64>,
}

/// `flags[i]`: the record has a hole between `x[i-1]` and `x[i]`. A spacing is a hole when
/// it is over three times both its neighbours' spacings (so a switch between 1 s detail and
/// 10 s baseline samples is not a hole), or over three times the 90th percentile of all.
pub fn gap_flags(x: &[TimestampMs]) -> Vec<bool> {
    let d: Vec<i64> = x.windows(2).map(|w| w[1] - w[0]).collect();
    let mut flags = vec![false; x.len()];
    if d.is_empty() {
        return flags;
    }
    let mut sorted = d.clone();
    sorted.sort_unstable();
    let p90 = sorted[(sorted.len() * 9 / 10).min(sorted.len() - 1)].max(1);
    for (i, &di) in d.iter().enumerate() {
        let prev = if i > 0 { d[i - 1] } else { 0 };
        let next = d.get(i + 1).copied().unwrap_or(0);
        let near = prev.max(next);
        flags[i + 1] = di > 1000 && ((near > 0 && di > 3 * near) || di > 3 * p90);
    }
    flags
}

/// The holes in the record: spans between samples (see [`gap_flags`]) and at the window's
/// edges (over three times the median spacing) with no sample.
pub fn holes(x: &[TimestampMs], from_ms: TimestampMs, to_ms: TimestampMs) -> Vec<(i64, i64)> {
    if x.is_empty() {
        return vec![(from_ms, to_ms)];
    }
    let mut d: Vec<i64> = x.windows(2).map(|w| w[1] - w[0]).collect();
    d.sort_unstable();
    let edge = d.get(d.len() / 2).map_or(30_000, |m| (3 * m).max(1000));
    let mut out = Vec::new();
    if x[0] - from_ms > edge {
        out.push((from_ms, x[0]));
    }
    for (i, gap) in gap_flags(x).into_iter().enumerate() {
        if gap {
            out.push((x[i - 1], x[i]));
        }
    }
    if to_ms - x[x.len() - 1] > edge {
        out.push((x[x.len() - 1], to_ms));
    }
    out
}

impl Chart {
    fn frame(&self) -> Frame {
        let gaps = gap_flags(&self.x);
        let n = self.x.len();
        if n <= MAX_POINTS {
            return Frame {
                x: self.x.iter().map(|&t| t as f64).collect(),
                gap_before: gaps,
                values: self.series.iter().map(|s| s.values.clone()).collect(),
                bucket_ms: None,
            };
        }
        let span = (self.to_ms - self.from_ms).max(1);
        let bucket = (span + MAX_POINTS as i64 - 1) / MAX_POINTS as i64;
        let nb = (span / bucket + 1) as usize;
        // Per bucket: whether a hole ends at its first sample, and per series (max, sum,
        // count). A hole inside one bucket is narrower than a point: not drawn.
        let mut first = vec![i64::MAX; nb];
        let mut hole_before = vec![false; nb];
        let mut acc = vec![vec![(f64::MIN, 0.0f64, 0u32); nb]; self.series.len()];
        for (i, &t) in self.x.iter().enumerate() {
            let b = (((t - self.from_ms).max(0) / bucket) as usize).min(nb - 1);
            if t < first[b] {
                first[b] = t;
                hole_before[b] = gaps[i];
            }
            for (s, series) in self.series.iter().enumerate() {
                if let Some(v) = series.values.get(i).copied().flatten() {
                    let a = &mut acc[s][b];
                    a.0 = a.0.max(v);
                    a.1 += v;
                    a.2 += 1;
                }
            }
        }
        let mut f = Frame {
            x: Vec::new(),
            gap_before: Vec::new(),
            values: vec![Vec::new(); self.series.len()],
            bucket_ms: Some(bucket),
        };
        for b in 0..nb {
            if first[b] == i64::MAX {
                continue;
            }
            f.x.push(self.from_ms as f64 + (b as f64 + 0.5) * bucket as f64);
            f.gap_before.push(hole_before[b]);
            for (s, col) in f.values.iter_mut().enumerate() {
                let (max, sum, count) = acc[s][b];
                col.push(match count {
                    0 => None,
                    _ if self.stacked => Some(sum / count as f64),
                    _ => Some(max),
                });
            }
        }
        f
    }

    /// The chart as an `<svg>` element.
    pub fn render(&self) -> String {
        let frame = self.frame();
        let plot_w = WIDTH - LEFT - RIGHT;
        let plot_h = HEIGHT - TOP - BOTTOM;
        let (from, to) = (
            self.from_ms as f64,
            (self.to_ms.max(self.from_ms + 1)) as f64,
        );
        let sx = |t: f64| LEFT + (t - from) / (to - from) * plot_w;

        // Stacked: each layer's top is the running sum; a missing value counts as 0 while
        // another layer has one.
        let mut tops: Vec<Vec<Option<f64>>> = frame.values.clone();
        if self.stacked {
            for i in 0..frame.x.len() {
                let any = frame.values.iter().any(|c| c[i].is_some());
                let mut sum = 0.0;
                for (s, col) in frame.values.iter().enumerate() {
                    sum += col[i].unwrap_or(0.0);
                    tops[s][i] = any.then_some(sum);
                }
            }
        }
        let data_max = tops
            .iter()
            .flatten()
            .flatten()
            .fold(0.0f64, |m, &v| m.max(v));
        let guide_max = self.guide.as_ref().map_or(0.0, |g| g.0 * 1.1);
        let (ticks, y_top) = y_ticks(
            self.unit,
            data_max.max(self.y_at_least).max(guide_max) * 1.04,
        );
        let sy = |v: f64| TOP + plot_h - (v / y_top).clamp(0.0, 1.02) * plot_h;

        let mut svg = String::with_capacity(4096);
        let _ = write!(
            svg,
            r#"<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{}">"#,
            escape(&self.title)
        );
        let _ = write!(
            svg,
            r#"<rect class="plot" x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}"/>"#
        );

        // Bands under everything else. Incident labels go on the first of three rows where
        // they overlap no other label (about 6 units a character).
        let clip = |t: i64| sx(t.clamp(self.from_ms, self.to_ms) as f64);
        let mut rows: [Vec<(f64, f64)>; 3] = Default::default();
        for b in &self.bands {
            if b.to_ms < self.from_ms || b.from_ms > self.to_ms {
                continue;
            }
            let (x0, x1) = (clip(b.from_ms), clip(b.to_ms));
            let w = (x1 - x0).max(1.5);
            let tone = match b.tone {
                Tone::Normal => "",
                Tone::Focus => " focus",
                Tone::Faded => " faded",
            };
            let (class, y, h) = match b.kind {
                BandKind::Incident => ("band-incident", TOP, plot_h),
                BandKind::NoData => ("band-nodata", TOP, plot_h),
                BandKind::Capture => ("band-capture", TOP + plot_h - 4.0, 4.0),
            };
            let _ = write!(
                svg,
                r#"<rect class="{class}{tone}" x="{x0:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}"><title>{}</title></rect>"#,
                escape(&b.label)
            );
            if b.kind == BandKind::Incident {
                let width = 6.0 * b.label.chars().count() as f64;
                let (lx, anchor, span) = if x0 + 3.0 + width <= LEFT + plot_w {
                    (x0 + 3.0, "start", (x0 + 3.0, x0 + 3.0 + width))
                } else {
                    let right = LEFT + plot_w - 3.0;
                    (right, "end", (right - width, right))
                };
                let row = (0..rows.len())
                    .find(|&r| rows[r].iter().all(|&(a, z)| span.1 < a || span.0 > z))
                    .unwrap_or(0);
                rows[row].push(span);
                let _ = write!(
                    svg,
                    r#"<line class="band-edge{tone}" x1="{x0:.1}" y1="{TOP}" x2="{x0:.1}" y2="{:.1}"/><text class="band-label{tone}" x="{lx:.1}" y="{:.1}" text-anchor="{anchor}">{}</text>"#,
                    TOP + plot_h,
                    TOP + 10.0 + 11.0 * row as f64,
                    escape(&b.label)
                );
            }
        }

        // Grid and y labels.
        for &v in &ticks {
            let y = sy(v);
            let _ = write!(
                svg,
                r#"<line class="gridline" x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}"/><text class="ylabel" x="{:.1}" y="{:.1}">{}</text>"#,
                LEFT + plot_w,
                LEFT - 5.0,
                y + 3.5,
                escape(&tick_label(self.unit, v, &ticks))
            );
        }
        // X labels.
        for (t, label) in x_ticks(self.from_ms, self.to_ms, &self.tz) {
            let x = sx(t as f64);
            let _ = write!(
                svg,
                r#"<line class="tick" x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}"/><text class="xlabel" x="{x:.1}" y="{:.1}">{}</text>"#,
                TOP + plot_h,
                TOP + plot_h + 4.0,
                HEIGHT - 8.0,
                escape(&label)
            );
        }
        if let Some((v, label)) = &self.guide {
            let y = sy(*v);
            let _ = write!(
                svg,
                r#"<line class="guide" x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}"/><text class="guide-label" x="{:.1}" y="{:.1}">{}</text>"#,
                LEFT + plot_w,
                LEFT + plot_w - 3.0,
                y - 3.0,
                escape(label)
            );
        }

        // Segments: runs of points with a value and no gap between them.
        let segments = |col: &[Option<f64>]| -> Vec<Vec<usize>> {
            let mut out: Vec<Vec<usize>> = Vec::new();
            let mut cur: Vec<usize> = Vec::new();
            for (i, (v, gap)) in col.iter().zip(&frame.gap_before).enumerate() {
                if (v.is_none() || *gap) && !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                if v.is_some() {
                    cur.push(i);
                }
            }
            if !cur.is_empty() {
                out.push(cur);
            }
            out
        };
        let no_data = frame.values.iter().all(|c| c.iter().all(Option::is_none));
        if no_data {
            let _ = write!(
                svg,
                r#"<text class="empty" x="{:.1}" y="{:.1}">no data in this window</text>"#,
                LEFT + plot_w / 2.0,
                TOP + plot_h / 2.0
            );
        }
        for (s, series) in self.series.iter().enumerate() {
            let col = &tops[s];
            let _ = write!(
                svg,
                r#"<g class="series" data-series="{}"><title>{}</title>"#,
                escape(&series.label),
                escape(&series.label)
            );
            for seg in segments(col) {
                let mut pts = String::new();
                for &i in &seg {
                    let _ = write!(
                        pts,
                        "{:.1},{:.1} ",
                        sx(frame.x[i]),
                        sy(col[i].unwrap_or(0.0))
                    );
                }
                if self.stacked {
                    // Down the layer below, backwards.
                    for &i in seg.iter().rev() {
                        let below = if s == 0 {
                            0.0
                        } else {
                            tops[s - 1][i].unwrap_or(0.0)
                        };
                        let _ = write!(pts, "{:.1},{:.1} ", sx(frame.x[i]), sy(below));
                    }
                    let _ = write!(
                        svg,
                        r#"<polygon class="area" fill="{}" points="{}"/>"#,
                        escape(&series.color),
                        pts.trim_end()
                    );
                } else if seg.len() == 1 {
                    let i = seg[0];
                    let _ = write!(
                        svg,
                        r#"<circle class="dot" cx="{:.1}" cy="{:.1}" r="2" fill="{}"/>"#,
                        sx(frame.x[i]),
                        sy(col[i].unwrap_or(0.0)),
                        escape(&series.color)
                    );
                } else {
                    let _ = write!(
                        svg,
                        r#"<polyline class="line{}" stroke="{}" points="{}"/>"#,
                        if series.dashed { " dashed" } else { "" },
                        escape(&series.color),
                        pts.trim_end()
                    );
                }
            }
            svg.push_str("</g>");
        }
        if let Some(b) = frame.bucket_ms {
            let _ = write!(
                svg,
                r#"<text class="note" x="{:.1}" y="{:.1}">each point: {} of {}</text>"#,
                LEFT + plot_w,
                TOP - 4.0,
                if self.stacked { "the mean" } else { "the peak" },
                crate::format::human_ms(b)
            );
        }
        svg.push_str("</svg>");
        svg
    }
}

/// Ticks from 0 to the returned top (inclusive), about five of them, at round values of the
/// unit (powers of 1024 for bytes).
pub fn y_ticks(unit: Unit, max: f64) -> (Vec<f64>, f64) {
    let max = if max.is_finite() && max > 0.0 {
        max
    } else {
        1.0
    };
    let base = match unit {
        Unit::Bytes | Unit::BytesPerSecond => {
            let mut b = 1.0;
            while max / b >= 1024.0 {
                b *= 1024.0;
            }
            b
        }
        _ => 1.0,
    };
    let raw = max / base / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag)
        * base;
    let n = (max / step).ceil().max(1.0) as usize;
    let ticks: Vec<f64> = (0..=n).map(|i| i as f64 * step).collect();
    let top = ticks[ticks.len() - 1];
    (ticks, top)
}

/// A y tick label, with as many decimals as the step needs.
pub fn tick_label(unit: Unit, v: f64, ticks: &[f64]) -> String {
    let step = if ticks.len() > 1 {
        ticks[1] - ticks[0]
    } else {
        1.0
    };
    // As many decimals as the step needs (0.25 → 2), at most 3.
    let num = |x: f64, step: f64| -> String {
        let d = (0..=3)
            .find(|d| {
                let s = step * 10f64.powi(*d);
                (s - s.round()).abs() < 1e-6
            })
            .unwrap_or(3) as usize;
        format!("{x:.d$}")
    };
    match unit {
        Unit::Plain => num(v, step),
        Unit::Percent => format!("{}%", num(v, step)),
        Unit::Bytes | Unit::BytesPerSecond => {
            const UNITS: [&str; 6] = crate::format::size::BYTE_UNITS;
            let top = ticks.last().copied().unwrap_or(v).max(1.0);
            let mut u = 0;
            let mut base = 1.0;
            while top / base >= 1024.0 && u < UNITS.len() - 1 {
                base *= 1024.0;
                u += 1;
            }
            let suffix = if unit == Unit::BytesPerSecond {
                "/s"
            } else {
                ""
            };
            format!("{} {}{suffix}", num(v / base, step / base), UNITS[u])
        }
    }
}

/// Time ticks at round local times, four to eight of them.
pub fn x_ticks(from_ms: TimestampMs, to_ms: TimestampMs, tz: &TimeZone) -> Vec<(i64, String)> {
    const STEPS_S: [i64; 21] = [
        1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400,
        172800, 604800, 2592000,
    ];
    let span = (to_ms - from_ms).max(1);
    let step = STEPS_S
        .iter()
        .map(|s| s * 1000)
        .find(|s| span / s <= 7)
        .unwrap_or(2_592_000_000);
    let offset_ms = jiff::Timestamp::from_millisecond(from_ms)
        .map(|t| tz.to_offset(t).seconds() as i64 * 1000)
        .unwrap_or(0);
    let fmt = if step < 60_000 {
        "%H:%M:%S"
    } else if span > 86_400_000 && step < 86_400_000 {
        "%m-%d %H:%M"
    } else if step < 86_400_000 {
        "%H:%M"
    } else {
        "%Y-%m-%d"
    };
    let mut out = Vec::new();
    let mut t = (from_ms + offset_ms).div_euclid(step) * step - offset_ms;
    if t < from_ms {
        t += step;
    }
    while t <= to_ms {
        let label = jiff::Timestamp::from_millisecond(t)
            .map(|ts| ts.to_zoned(tz.clone()).strftime(fmt).to_string())
            .unwrap_or_default();
        out.push((t, label));
        t += step;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart(x: Vec<i64>, values: Vec<Option<f64>>) -> Chart {
        Chart {
            title: "t <&>".into(),
            from_ms: x[0],
            to_ms: *x.last().unwrap(),
            x,
            series: vec![Series {
                label: "burner (pid 1, root) <script>".into(),
                color: "#4e79a7".into(),
                values,
                dashed: false,
            }],
            unit: Unit::Percent,
            stacked: false,
            y_at_least: 100.0,
            guide: None,
            bands: Vec::new(),
            tz: TimeZone::UTC,
        }
    }

    #[test]
    fn nice_y_ticks() {
        assert_eq!(
            y_ticks(Unit::Percent, 100.0).0,
            vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0]
        );
        assert_eq!(y_ticks(Unit::Plain, 1.7).0, vec![0.0, 0.5, 1.0, 1.5, 2.0]);
        let (t, top) = y_ticks(Unit::Bytes, 3.3 * 1024.0 * 1024.0 * 1024.0);
        assert_eq!(top, 4.0 * 1024.0 * 1024.0 * 1024.0, "{t:?}");
        assert_eq!(tick_label(Unit::Bytes, t[1], &t), "1 GiB");
        let (t, _) = y_ticks(Unit::Plain, 0.0);
        assert_eq!(t.last(), Some(&1.0));
        let (t, _) = y_ticks(Unit::Plain, 0.33);
        assert_eq!(tick_label(Unit::Plain, t[1], &t), "0.1");
        let (t, _) = y_ticks(Unit::BytesPerSecond, 1500.0);
        assert_eq!(tick_label(Unit::BytesPerSecond, t[1], &t), "0.5 KiB/s");
        let (t, _) = y_ticks(Unit::Percent, 12.0);
        assert_eq!(tick_label(Unit::Percent, t[1], &t), "2.5%");
    }

    #[test]
    fn time_ticks_at_round_local_times() {
        // 2026-11-26 03:00:00 UTC .. 03:20:00
        let from = 1_795_662_000_000;
        let ticks = x_ticks(from + 17_000, from + 1_200_000, &TimeZone::UTC);
        let labels: Vec<&str> = ticks.iter().map(|t| t.1.as_str()).collect();
        assert_eq!(labels, vec!["03:05", "03:10", "03:15", "03:20"]);
        let tz = TimeZone::fixed(jiff::tz::offset(1));
        let ticks = x_ticks(from, from + 50_000, &tz);
        assert_eq!(ticks[0].1, "04:00:00");
        assert_eq!(ticks.len(), 6);
    }

    #[test]
    fn lines_break_at_holes_and_missing_values() {
        let x = vec![0, 1000, 2000, 3000, 60_000, 61_000, 62_000, 63_000];
        let v = vec![
            Some(1.0),
            Some(2.0),
            Some(3.0),
            Some(4.0),
            Some(5.0),
            None,
            Some(1.0),
            Some(2.0),
        ];
        assert_eq!(
            holes(&x, -100_000, 63_000),
            vec![(-100_000, 0), (3000, 60_000)]
        );
        // Detail at 1 s, then baseline at 10 s: no hole.
        let mixed = [0, 1000, 2000, 3000, 13_000, 23_000, 33_000];
        assert!(holes(&mixed, 0, 33_000).is_empty());
        let svg = chart(x, v).render();
        // [0..3], [60s] alone (a dot: its neighbour is missing), [62s, 63s].
        assert_eq!(svg.matches("<polyline").count(), 2, "{svg}");
        assert_eq!(svg.matches("<circle").count(), 1, "{svg}");
    }

    #[test]
    fn text_is_escaped_and_nothing_external() {
        let svg = chart(vec![0, 1000], vec![Some(1.0), Some(2.0)]).render();
        assert!(svg.contains("burner (pid 1, root) &lt;script&gt;"));
        assert!(svg.contains(r#"aria-label="t &lt;&amp;&gt;""#));
        assert!(!svg.contains("<script"));
        // Inline SVG in HTML needs no namespace URL: no URL at all.
        assert!(!svg.contains("http"));
    }

    #[test]
    fn long_windows_are_bucketed_to_their_peaks() {
        let n = 10_000usize;
        let x: Vec<i64> = (0..n as i64).map(|i| i * 1000).collect();
        let v: Vec<Option<f64>> = (0..n)
            .map(|i| Some(if i == 5000 { 90.0 } else { 1.0 }))
            .collect();
        let c = chart(x, v);
        let f = c.frame();
        assert!(f.x.len() <= MAX_POINTS + 1, "{}", f.x.len());
        let col = &f.values[0];
        assert_eq!(col.iter().flatten().fold(0.0f64, |m, v| m.max(*v)), 90.0);
        assert!(!f.gap_before.iter().any(|g| *g));
        assert!(c.render().contains("each point: the peak of"));
    }

    #[test]
    fn stacked_areas_sum_their_layers() {
        let mut c = chart(
            vec![0, 1000, 2000],
            vec![Some(10.0), Some(20.0), Some(30.0)],
        );
        c.stacked = true;
        c.series.push(Series {
            label: "system".into(),
            color: "#f28e2b".into(),
            values: vec![Some(5.0), None, Some(5.0)],
            dashed: false,
        });
        let svg = c.render();
        assert_eq!(svg.matches("<polygon").count(), 2, "{svg}");
    }
}
