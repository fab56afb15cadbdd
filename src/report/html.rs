//! The report page: one HTML file with its CSS and SVG charts inline. No script, no URL: the
//! only links are to anchors in the page itself.

use std::collections::HashMap;
use std::fmt::Write;

use jiff::tz::TimeZone;

use super::chart::{self, Band, BandKind, Chart, Series, Tone, Unit};
use super::ReportData;
use crate::format::{self as output, escape_html as escape, human_ms, ProcessLabel};
use crate::model::Resource;
use crate::model::TimestampMs;

/// Series colors (Tableau 10 without its grey): distinct on screen and on paper.
const PALETTE: [&str; 9] = [
    "#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#e15759", "#76b7b2", "#edc948", "#9c755f",
    "#ff9da7",
];

const CSS: &str = r#"
:root{--fg:#1d2330;--muted:#5b6475;--line:#dde1e8;--panel:#f5f6f8;--inc:#d62728}
*{box-sizing:border-box}
body{margin:0;color:var(--fg);background:#fff;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1360px;margin:0 auto;padding:20px 24px 40px}
h1{font-size:22px;margin:0 0 4px;line-height:1.25}
h2{font-size:17px;margin:28px 0 10px;padding-bottom:4px;border-bottom:1px solid var(--line)}
h3{font-size:14px;margin:14px 0 6px}
a{color:#2b5c99}
.meta,.muted{color:var(--muted)}
nav{margin:8px 0 0;font-size:13px}
nav a{margin-right:14px}
.facts{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:12px 0 0}
.facts dt{color:var(--muted)}
.facts dd{margin:0}
.kpis{display:grid;grid-template-columns:repeat(auto-fill,minmax(136px,1fr));gap:8px;margin:16px 0 4px}
.kpi{background:var(--panel);border-radius:6px;padding:8px 10px}
.kpi b{display:block;font-size:18px;font-variant-numeric:tabular-nums}
.kpi span{color:var(--muted);font-size:12px}
.kpi.span2{grid-column:span 2}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(540px,1fr));gap:14px}
figure{margin:0;border:1px solid var(--line);border-radius:6px;padding:10px 12px 8px;break-inside:avoid;page-break-inside:avoid}
figcaption{font-weight:600}
figcaption span{font-weight:400;color:var(--muted);font-size:12px;margin-left:6px}
svg.chart{display:block;width:100%;height:auto;margin-top:4px}
svg.chart text{font:10.5px system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;fill:#5b6475}
.plot{fill:#fff;stroke:#c9ced8}
.gridline{stroke:#eceef2}
.tick{stroke:#c9ced8}
.ylabel{text-anchor:end}
.xlabel{text-anchor:middle}
.line{fill:none;stroke-width:1.7;stroke-linejoin:round;stroke-linecap:round}
.dashed{stroke-dasharray:5 3;stroke-width:1.2}
.area{stroke:none;fill-opacity:.85}
.band-incident{fill:var(--inc);fill-opacity:.10}
.band-incident.focus{fill-opacity:.15}
.band-incident.faded{fill:#8a93a3;fill-opacity:.10}
.band-edge{stroke:var(--inc);stroke-opacity:.7}
.band-edge.faded{stroke:#8a93a3}
svg.chart text.band-label{fill:#a61e1e;font-weight:600}
svg.chart text.band-label.faded{fill:#6b7382;font-weight:400}
.band-nodata{fill:#8a93a3;fill-opacity:.18}
.band-capture{fill:#4e79a7;fill-opacity:.55}
.guide{stroke:#7a8292;stroke-dasharray:6 4}
.guide-label,.note{text-anchor:end}
svg.chart text.note{font-size:9.5px}
svg.chart text.empty{text-anchor:middle;font-size:13px}
.legend{list-style:none;padding:0;margin:6px 0 0;display:flex;flex-wrap:wrap;gap:3px 16px;font-size:12.5px}
.legend li{white-space:nowrap}
.legend .val{color:var(--muted)}
.sw{display:inline-block;width:16px;height:4px;border-radius:2px;vertical-align:middle;margin-right:6px}
.sw.dashed{height:0;border-top:2px dashed;background:none!important}
.key{display:flex;flex-wrap:wrap;gap:4px 18px;font-size:12.5px;color:var(--muted);margin:0 0 10px}
.key i{display:inline-block;width:18px;height:11px;vertical-align:-1px;margin-right:5px;border-radius:2px}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{padding:4px 8px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{background:var(--panel);font-weight:600;white-space:nowrap}
tr.focus td{background:#fdeeee;font-weight:600}
.conn th,.conn td{padding:4px 6px}
.conn td.name{white-space:normal;overflow-wrap:anywhere;max-width:13em}
.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.cmd{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px;color:var(--muted);overflow-wrap:anywhere}
td.time,td.name{white-space:nowrap;font-variant-numeric:tabular-nums}
.wide{overflow-x:auto}
.badge{display:inline-block;padding:0 7px;border-radius:9px;font-size:12px;font-weight:600;background:#e7ebf2}
.sev-warning{background:#fff1c2;color:#6f5300}
.sev-critical{background:#fbd9d7;color:#8f1a1a}
.sev-info{background:#dde9f9;color:#1f4a85}
.st-sent{color:#2f7a32;font-weight:600}
.st-failed{color:#a61e1e;font-weight:600}
pre{background:var(--panel);padding:8px 10px;border-radius:6px;white-space:pre-wrap;overflow-wrap:anywhere;font-size:12.5px}
footer{margin-top:30px;color:var(--muted);font-size:12.5px}
@media (max-width:700px){.charts{grid-template-columns:1fr}main{padding:12px}}
@media print{
  @page{size:A4 landscape;margin:10mm}
  body{font-size:11px}
  main{max-width:none;padding:0}
  nav{display:none}
  .charts{grid-template-columns:1fr 1fr;gap:8px}
  h2{break-after:avoid;page-break-after:avoid}
  tr,figure,.kpi{break-inside:avoid;page-break-inside:avoid}
  *{-webkit-print-color-adjust:exact;print-color-adjust:exact}
  a{color:inherit;text-decoration:none}
}
"#;

/// The report as one HTML document.
pub fn render(d: &ReportData, tz: &TimeZone) -> String {
    let local = |ms: TimestampMs| -> String {
        jiff::Timestamp::from_millisecond(ms)
            .map(|t| {
                t.to_zoned(tz.clone())
                    .strftime("%Y-%m-%d %H:%M:%S")
                    .to_string()
            })
            .unwrap_or_else(|_| ms.to_string())
    };
    let w = &d.window;
    let host_name = d
        .host
        .first()
        .map(|h| h.host_name.clone())
        .unwrap_or_else(|| "?".into());
    let title = match &d.focus {
        Some(i) => format!("Incident {}: {}", i.id, i.title),
        None => format!("{host_name}: {} to {}", local(w.from_ms), local(w.to_ms)),
    };
    let mut h = String::with_capacity(64 * 1024);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"generator\" content=\"hogtrap {}\">\
         <title>hogtrap report: {}</title><style>{CSS}</style></head><body><main>",
        env!("CARGO_PKG_VERSION"),
        escape(&title)
    );

    // Header.
    let detail = d.host.iter().filter(|p| p.detail).count();
    let _ = write!(
        h,
        "<header><h1>{}</h1><p class=\"meta\">host <b>{}</b> · {} to {} ({}) · {} samples, {} in detail · \
         made {} by hogtrap {}</p>",
        escape(&title),
        escape(&host_name),
        escape(&local(w.from_ms)),
        escape(&local(w.to_ms)),
        escape(&human_ms(w.to_ms - w.from_ms)),
        d.host.len(),
        detail,
        escape(&local(d.generated_ms)),
        env!("CARGO_PKG_VERSION"),
    );
    h.push_str(
        "<nav><a href=\"#host\">Host</a><a href=\"#processes\">Processes</a>\
         <a href=\"#incidents\">Incidents and culprits</a><a href=\"#alerts\">Alerts</a>\
         <a href=\"#connections\">Connections</a><a href=\"#sql\">Dig further</a></nav>",
    );
    if let Some(i) = &d.focus {
        h.push_str("<dl class=\"facts\">");
        let mut fact = |k: &str, v: String| {
            let _ = write!(h, "<dt>{}</dt><dd>{v}</dd>", escape(k));
        };
        fact(
            "rule",
            format!(
                "<b>{}</b>{} {}",
                escape(&i.rule),
                i.rule_file
                    .as_deref()
                    .map(|f| format!(" <span class=\"muted\">({})</span>", escape(f)))
                    .unwrap_or_default(),
                severity_badge(i.severity.as_str())
            ),
        );
        fact("opened", escape(&local(i.opened_ms)));
        fact(
            "closed",
            match i.closed_ms {
                Some(c) => format!(
                    "{} (after {})",
                    escape(&local(c)),
                    escape(&human_ms(c - i.opened_ms))
                ),
                None => "still open when the report was made".to_string(),
            },
        );
        if !i.summary.is_empty() {
            fact("summary", escape(&i.summary));
        }
        if let serde_json::Value::Object(peak) = &i.peak {
            let parts: Vec<String> = peak
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{} <b>{}</b>",
                        escape(k),
                        escape(&crate::format::value_text(k, v))
                    )
                })
                .collect();
            if !parts.is_empty() {
                fact("peaks", parts.join(" · "));
            }
        }
        h.push_str("</dl>");
    }
    kpis(&mut h, d);
    h.push_str("</header>");

    // Shading shared by every chart.
    let mut bands: Vec<Band> = Vec::new();
    let x: Vec<TimestampMs> = d.host.iter().map(|p| p.ts_ms).collect();
    for (a, b) in chart::holes(&x, w.from_ms, w.to_ms) {
        bands.push(Band {
            from_ms: a,
            to_ms: b,
            kind: BandKind::NoData,
            tone: Tone::Normal,
            label: format!("no samples for {}", human_ms(b - a)),
        });
    }
    for c in &d.captures {
        bands.push(Band {
            from_ms: c.started_ms,
            to_ms: c.ended_ms,
            kind: BandKind::Capture,
            tone: Tone::Normal,
            label: format!(
                "detail capture by {} every {}",
                c.rule,
                human_ms(c.interval_ms)
            ),
        });
    }
    for i in &d.incidents {
        let tone = match &d.focus {
            None => Tone::Normal,
            Some(f) if f.id == i.id => Tone::Focus,
            Some(_) => Tone::Faded,
        };
        bands.push(Band {
            from_ms: i.opened_ms,
            to_ms: i.closed_ms.unwrap_or(w.to_ms),
            kind: BandKind::Incident,
            tone,
            // Around the incident of the report, the others are numbers only.
            label: if tone == Tone::Faded {
                format!("#{}", i.id)
            } else {
                format!("#{} {}", i.id, i.rule)
            },
        });
    }
    let base = Chart {
        title: String::new(),
        from_ms: w.from_ms,
        to_ms: w.to_ms,
        x: x.clone(),
        series: Vec::new(),
        unit: Unit::Plain,
        stacked: false,
        y_at_least: 0.0,
        guide: None,
        bands,
        tz: tz.clone(),
    };
    let col = |f: &dyn Fn(&crate::store::report::HostPoint) -> Option<f64>| -> Vec<Option<f64>> {
        d.host.iter().map(f).collect()
    };
    let series = |label: &str, color: &str, values: Vec<Option<f64>>, dashed: bool| Series {
        label: label.to_string(),
        color: color.to_string(),
        values,
        dashed,
    };

    h.push_str("<section id=\"host\"><h2>Host</h2>");
    h.push_str(
        "<div class=\"key\"><span><i style=\"background:rgba(214,39,40,.18);border-left:2px solid #d62728\"></i>incident</span>\
         <span><i style=\"background:#4e79a7;opacity:.6;height:4px\"></i>detail capture (every process, connections)</span>\
         <span><i style=\"background:rgba(138,147,163,.3)\"></i>no samples recorded</span></div>",
    );
    h.push_str("<div class=\"charts\">");
    let cpus = d.host.last().map_or(1, |p| p.cpu_count.max(1));
    let per_cpu = |v: f64, p: &crate::store::report::HostPoint| Some(v / p.cpu_count.max(1) as f64);
    figure(
        &mut h,
        "Load per CPU",
        &format!("load average ÷ {cpus} CPUs; above 1.0 tasks wait for a CPU"),
        &Chart {
            title: "Load per CPU".into(),
            series: vec![
                series(
                    "load1",
                    PALETTE[0],
                    col(&|p| per_cpu(p.host.load1, p)),
                    false,
                ),
                series(
                    "load5",
                    PALETTE[2],
                    col(&|p| per_cpu(p.host.load5, p)),
                    true,
                ),
                series(
                    "load15",
                    PALETTE[7],
                    col(&|p| per_cpu(p.host.load15, p)),
                    true,
                ),
            ],
            y_at_least: 1.0,
            guide: Some((1.0, "1.0 per CPU".into())),
            ..base.clone()
        },
        None,
    );
    // The stacked parts of the CPU chart: label, palette colour, value.
    type Part = fn(&crate::model::HostRow) -> f64;
    let cpu_parts: [(&str, usize, Part); 4] = [
        ("user", 0, |h| h.cpu_user_pct),
        ("system", 1, |h| h.cpu_system_pct),
        ("iowait", 4, |h| h.cpu_iowait_pct),
        ("steal", 3, |h| h.cpu_steal_pct),
    ];
    figure(
        &mut h,
        "CPU",
        "% of all CPUs, stacked",
        &Chart {
            title: "CPU %".into(),
            series: cpu_parts
                .iter()
                .map(|&(label, color, part)| {
                    series(label, PALETTE[color], col(&|p| Some(part(&p.host))), false)
                })
                .collect(),
            unit: Unit::Percent,
            stacked: true,
            y_at_least: 100.0,
            ..base.clone()
        },
        None,
    );
    let most = |f: fn(&crate::model::HostRow) -> u64| d.host.iter().map(|p| f(&p.host)).max();
    let mem_total = most(|h| h.mem_total_bytes).unwrap_or(0);
    let swap_total = most(|h| h.swap_total_bytes).unwrap_or(0);
    let mem_peak = most(|h| h.mem_used_bytes).unwrap_or(0);
    // The RAM size as a guide only when use comes near it: otherwise it flattens the lines.
    let near_full = mem_peak as f64 >= 0.5 * mem_total as f64;
    figure(
        &mut h,
        "Memory and swap",
        &format!(
            "used, of {} RAM and {}",
            output::bytes(mem_total as f64),
            if swap_total > 0 {
                format!("{} swap", output::bytes(swap_total as f64))
            } else {
                "no swap".to_string()
            }
        ),
        &Chart {
            title: "Memory and swap".into(),
            series: vec![
                series(
                    "memory used",
                    PALETTE[0],
                    col(&|p| Some(p.host.mem_used_bytes as f64)),
                    false,
                ),
                series(
                    "swap used",
                    PALETTE[1],
                    col(&|p| Some(p.host.swap_used_bytes as f64)),
                    false,
                ),
            ],
            unit: Unit::Bytes,
            guide: near_full.then(|| (mem_total as f64, "RAM total".to_string())),
            ..base.clone()
        },
        None,
    );
    let has_psi = d
        .host
        .iter()
        .any(|p| p.host.psi_cpu.map(|x| x.some_avg10).is_some());
    figure(
        &mut h,
        "Pressure stall (PSI)",
        if has_psi {
            "some avg10: % of time some task waited for the resource"
        } else {
            "not recorded on this host (kernel without PSI)"
        },
        &Chart {
            title: "PSI some avg10".into(),
            series: vec![
                series(
                    "cpu",
                    PALETTE[0],
                    col(&|p| p.host.psi_cpu.map(|x| x.some_avg10)),
                    false,
                ),
                series(
                    "memory",
                    PALETTE[1],
                    col(&|p| p.host.psi_memory.map(|x| x.some_avg10)),
                    false,
                ),
                series(
                    "io",
                    PALETTE[4],
                    col(&|p| p.host.psi_io.map(|x| x.some_avg10)),
                    false,
                ),
            ],
            unit: Unit::Percent,
            y_at_least: 10.0,
            ..base.clone()
        },
        None,
    );
    h.push_str("</div></section>");

    // The top processes: one color per process across the four charts.
    h.push_str("<section id=\"processes\"><h2>Top processes over time</h2>");
    h.push_str(
        "<p class=\"muted\">The processes with the most CPU time, peak memory, disk I/O and network \
         bytes in the window (as <code>hogtrap top --from … --to …</code> ranks them). A line breaks where \
         the process was not among the processes kept in a sample.</p><div class=\"charts\">",
    );
    // A process keeps its color across the charts; a new one takes the least used color
    // that no other line of the same chart has.
    let mut colors: HashMap<i64, usize> = HashMap::new();
    let mut usage = [0usize; PALETTE.len()];
    let index: HashMap<TimestampMs, usize> = x.iter().enumerate().map(|(i, &t)| (t, i)).collect();
    for (r, procs) in &d.top {
        let (title, sub, unit, at_least) = match r {
            Resource::Cpu => (
                "CPU by process",
                "% of one CPU (100 = one core)",
                Unit::Percent,
                100.0,
            ),
            Resource::Mem => ("Memory by process", "resident set size", Unit::Bytes, 0.0),
            Resource::Io => (
                "Disk I/O by process",
                "read + write, bytes/s",
                Unit::BytesPerSecond,
                0.0,
            ),
            Resource::Net => (
                "Network by process",
                "TCP sent + received, bytes/s",
                Unit::BytesPerSecond,
                0.0,
            ),
        };
        let mut s = Vec::new();
        let mut legend = Vec::new();
        let taken: Vec<usize> = procs
            .iter()
            .filter_map(|p| colors.get(&p.process.process_id).copied())
            .collect();
        let mut in_chart = taken.clone();
        for p in procs {
            let c = match colors.get(&p.process.process_id) {
                Some(&c) => c,
                None => {
                    let c = (0..PALETTE.len())
                        .filter(|c| !in_chart.contains(c))
                        .min_by_key(|&c| (usage[c], c))
                        .unwrap_or(0);
                    colors.insert(p.process.process_id, c);
                    in_chart.push(c);
                    c
                }
            };
            usage[c] += 1;
            let color = PALETTE[c];
            let mut values = vec![None; x.len()];
            for (t, v) in &p.points {
                if let Some(&i) = index.get(t) {
                    values[i] = Some(*v);
                }
            }
            let label = ProcessLabel::new(p.process.pid, &p.process.name, Some(&p.process.user))
                .with_cmdline(Some(&p.process.cmdline));
            legend.push(format!(
                "<li title=\"{}\"><span class=\"sw\" style=\"background:{color}\"></span>{} \
                 <span class=\"val\">peak {}, {} {}</span></li>",
                escape(&label.command(200)),
                escape(&label.to_string()),
                escape(&output::resource_value(*r, p.process.peak)),
                if *r == Resource::Mem { "avg" } else { "total" },
                escape(&if *r == Resource::Mem {
                    output::bytes(p.process.avg)
                } else {
                    output::resource_total(*r, p.process.total)
                }),
            ));
            s.push(Series {
                label: label.to_string(),
                color: color.to_string(),
                values,
                dashed: false,
            });
        }
        let legend = if legend.is_empty() {
            "<ul class=\"legend\"><li class=\"muted\">no process used any in this window</li></ul>"
                .to_string()
        } else {
            format!("<ul class=\"legend\">{}</ul>", legend.join(""))
        };
        figure(
            &mut h,
            title,
            sub,
            &Chart {
                title: title.into(),
                series: s,
                unit,
                y_at_least: at_least,
                ..base.clone()
            },
            Some(&legend),
        );
    }
    h.push_str("</div></section>");

    incidents_section(&mut h, d, &local);
    alerts_section(&mut h, d, &local);
    connections_section(&mut h, d, &local);
    sql_section(&mut h, d, &local);
    let _ = writeln!(
        h,
        "<footer>hogtrap {} · times are local ({}) · this page is self-contained: it loads nothing \
         from the network.</footer></main></body></html>",
        env!("CARGO_PKG_VERSION"),
        escape(tz.iana_name().unwrap_or("system time zone"))
    );
    h
}

fn severity_badge(severity: &str) -> String {
    let class = match severity {
        "warning" | "critical" | "info" => severity,
        _ => "other",
    };
    format!(
        "<span class=\"badge sev-{class}\">{}</span>",
        escape(severity)
    )
}

fn figure(h: &mut String, title: &str, sub: &str, c: &Chart, legend: Option<&str>) {
    let legend = match legend {
        Some(l) => l.to_string(),
        None => {
            let items: Vec<String> = c
                .series
                .iter()
                .filter(|s| s.values.iter().any(Option::is_some))
                .map(|s| {
                    format!(
                        "<li><span class=\"sw{}\" style=\"background:{c};color:{c}\"></span>{}</li>",
                        if s.dashed { " dashed" } else { "" },
                        escape(&s.label),
                        c = escape(&s.color)
                    )
                })
                .collect();
            format!("<ul class=\"legend\">{}</ul>", items.join(""))
        }
    };
    let _ = write!(
        h,
        "<figure><figcaption>{}<span>{}</span></figcaption>{}{legend}</figure>",
        escape(title),
        escape(sub),
        c.render()
    );
}

fn kpis(h: &mut String, d: &ReportData) {
    if d.host.is_empty() {
        h.push_str("<p><b>No samples in this window.</b></p>");
        return;
    }
    let max_by = |f: &dyn Fn(&crate::store::report::HostPoint) -> f64| {
        d.host
            .iter()
            .map(|p| (f(p), p.ts_ms))
            .fold((f64::MIN, 0), |a, b| if b.0 > a.0 { b } else { a })
    };
    // (value, what it is, spans two columns)
    let mut items: Vec<(String, String, bool)> = Vec::new();
    let (load, _) = max_by(&|p| p.host.load1 / p.cpu_count.max(1) as f64);
    items.push((format!("{load:.2}"), "peak load1 per CPU".into(), false));
    let (busy, _) = max_by(&|p| {
        p.host.cpu_user_pct + p.host.cpu_system_pct + p.host.cpu_iowait_pct + p.host.cpu_steal_pct
    });
    items.push((output::pct(busy), "peak CPU busy".into(), false));
    let (mem, _) = max_by(&|p| p.host.mem_used_bytes as f64);
    items.push((output::bytes(mem), "peak memory used".into(), false));
    if d.host.iter().any(|p| p.host.swap_total_bytes > 0) {
        let (swap, _) = max_by(&|p| p.host.swap_used_bytes as f64);
        items.push((output::bytes(swap), "peak swap used".into(), false));
    }
    for (name, f) in [
        (
            "cpu",
            (|p: &crate::store::report::HostPoint| p.host.psi_cpu.map(|x| x.some_avg10))
                as fn(&_) -> _,
        ),
        ("memory", |p| p.host.psi_memory.map(|x| x.some_avg10)),
        ("io", |p| p.host.psi_io.map(|x| x.some_avg10)),
    ] {
        if d.host.iter().any(|p| f(p).is_some()) {
            let (v, _) = max_by(&|p| f(p).unwrap_or(0.0));
            items.push((output::pct(v), format!("peak PSI {name} some"), false));
        }
    }
    if let Some((_, procs)) = d.top.iter().find(|(r, _)| *r == Resource::Cpu) {
        if let Some(p) = procs.first() {
            items.push((
                p.process.name.clone(),
                format!(
                    "most CPU: {} over the window (pid {})",
                    output::cpu_seconds(p.process.total),
                    p.process.pid
                ),
                true,
            ));
        }
    }
    h.push_str("<div class=\"kpis\">");
    for (v, k, wide) in items {
        let _ = write!(
            h,
            "<div class=\"kpi{}\"><b>{}</b><span>{}</span></div>",
            if wide { " span2" } else { "" },
            escape(&v),
            escape(&k)
        );
    }
    h.push_str("</div>");
}

fn incidents_section(h: &mut String, d: &ReportData, local: &dyn Fn(TimestampMs) -> String) {
    h.push_str("<section id=\"incidents\"><h2>Incidents and culprits</h2>");
    if d.incidents.is_empty() {
        h.push_str("<p class=\"muted\">No incident was open in this window.</p></section>");
        return;
    }
    h.push_str(
        "<table><thead><tr><th class=\"num\">ID</th><th>Rule</th><th>Severity</th><th>Opened</th>\
         <th>Closed</th><th class=\"num\">Lasted</th><th>Title</th></tr></thead><tbody>",
    );
    for i in &d.incidents {
        let _ = write!(
            h,
            "<tr{}><td class=\"num\">{}</td><td>{}</td><td>{}</td><td class=\"time\">{}</td>\
             <td class=\"time\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            if d.focus.as_ref().is_some_and(|f| f.id == i.id) {
                " class=\"focus\""
            } else {
                ""
            },
            i.id,
            escape(&i.rule),
            severity_badge(i.severity.as_str()),
            escape(&local(i.opened_ms)),
            i.closed_ms
                .map(|c| escape(&local(c)))
                .unwrap_or_else(|| "open".into()),
            escape(&human_ms(
                i.closed_ms.unwrap_or(d.generated_ms) - i.opened_ms
            )),
            escape(&i.title)
        );
    }
    h.push_str("</tbody></table>");
    let _ = write!(
        h,
        "<h3>Culprits</h3><p class=\"muted\">The top processes by each resource in the sample that \
         opened the incident.</p><table id=\"culprits\"><thead><tr><th class=\"num\">Incident</th>\
         <th>Resource</th><th class=\"num\">#</th><th class=\"num\">{}</th><th>{}</th><th>{}</th>\
         <th class=\"num\">Value</th><th>Command</th></tr></thead><tbody>",
        ProcessLabel::COLUMNS[0],
        ProcessLabel::COLUMNS[1],
        ProcessLabel::COLUMNS[2]
    );
    let mut any = false;
    // An incident report tables its own culprits; the others are a `hogtrap show` away.
    let shown = d
        .culprits
        .iter()
        .filter(|(id, _)| d.focus.as_ref().is_none_or(|f| f.id == *id));
    for (id, culprits) in shown {
        for c in culprits {
            any = true;
            let label = ProcessLabel::new(c.pid, &c.name, c.user.as_deref())
                .with_cmdline(c.cmdline.as_deref());
            let [pid, user, name] = label.cells();
            let value = output::resource_value(c.resource, c.value);
            let _ = write!(
                h,
                "<tr><td class=\"num\">{id}</td><td>{}</td><td class=\"num\">{}</td>\
                 <td class=\"num\">{}</td><td>{}</td><td class=\"name\"><b>{}</b></td><td class=\"num\">{}</td>\
                 <td class=\"cmd\">{}</td></tr>",
                escape(&c.resource.as_str().to_uppercase()),
                c.rank,
                escape(&pid),
                escape(&user),
                escape(&name),
                escape(&value),
                escape(&label.command(160))
            );
        }
    }
    if !any {
        h.push_str("<tr><td colspan=\"8\" class=\"muted\">no culprits recorded</td></tr>");
    }
    h.push_str("</tbody></table>");
    if let Some(f) = &d.focus {
        let others: Vec<String> = d
            .incidents
            .iter()
            .filter(|i| i.id != f.id)
            .map(|i| format!("<code>hogtrap show {}</code>", i.id))
            .collect();
        if !others.is_empty() {
            let _ = write!(
                h,
                "<p class=\"muted\">The culprits of the other incidents in the window: {}.</p>",
                others.join(", ")
            );
        }
    }
    h.push_str("</section>");
}

fn alerts_section(h: &mut String, d: &ReportData, local: &dyn Fn(TimestampMs) -> String) {
    h.push_str("<section id=\"alerts\"><h2>Alerts that went out</h2>");
    if d.alerts.is_empty() {
        h.push_str(
            "<p class=\"muted\">No alert was raised in this window (no channel enabled, or no \
             rule asked for one).</p></section>",
        );
        return;
    }
    h.push_str(
        "<div class=\"wide\"><table><thead><tr><th>Raised</th><th class=\"num\">Incident</th><th>Rule</th>\
         <th>Channel</th><th>Kind</th><th>Subject</th><th>Status</th><th class=\"num\">Attempts</th>\
         <th>Sent</th><th>Last error</th></tr></thead><tbody>",
    );
    for a in &d.alerts {
        let _ = write!(
            h,
            "<tr><td class=\"time\">{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td class=\"st-{}\">{}</td><td class=\"num\">{}</td><td class=\"time\">{}</td>\
             <td>{}</td></tr>",
            escape(&local(a.created_ms)),
            a.incident_id.map(|i| i.to_string()).unwrap_or_default(),
            escape(&a.rule),
            escape(&a.channel),
            escape(a.kind.as_str()),
            escape(&a.subject),
            escape(&a.status),
            escape(&a.status),
            a.attempts,
            a.sent_ms.map(|t| escape(&local(t))).unwrap_or_default(),
            escape(a.last_error.as_deref().unwrap_or(""))
        );
    }
    h.push_str("</tbody></table></div></section>");
}

fn connections_section(h: &mut String, d: &ReportData, local: &dyn Fn(TimestampMs) -> String) {
    h.push_str("<section id=\"connections\"><h2>Captured connections</h2>");
    if d.connections.is_empty() {
        h.push_str(
            "<p class=\"muted\">No connections were captured in this window (they are recorded \
             at detail level, while a rule's capture runs).</p></section>",
        );
        return;
    }
    let _ = write!(
        h,
        "<p class=\"muted\">Sockets seen in detail samples, by process and remote endpoint, most \
         bytes first (listening and unconnected sockets left out; at most {}). Bytes are the \
         rates times the sample intervals.</p>\
         <div class=\"wide\"><table class=\"conn\"><thead><tr><th class=\"num\">{}</th><th>{}</th><th>{}</th>\
         <th>Proto</th><th>Remote address</th><th class=\"num\">Port</th>\
         <th class=\"num\">Sent</th><th class=\"num\">Received</th><th class=\"num\">Peak sent</th>\
         <th class=\"num\">Peak received</th><th>Seen</th><th>State</th></tr></thead><tbody>",
        super::MAX_CONNECTIONS,
        ProcessLabel::COLUMNS[0],
        ProcessLabel::COLUMNS[1],
        ProcessLabel::COLUMNS[2]
    );
    // Same day as the window's start: the time alone (keeps the table within a laptop screen).
    let day = local(d.window.from_ms).chars().take(11).collect::<String>();
    let clock = |ms: TimestampMs| {
        let t = local(ms);
        t.strip_prefix(&day).map(str::to_string).unwrap_or(t)
    };
    for c in &d.connections {
        let [pid, user, name] = match c.pid {
            Some(pid) => {
                ProcessLabel::new(pid, c.name.as_deref().unwrap_or("?"), c.user.as_deref()).cells()
            }
            None => ["?".into(), "?".into(), "(owner not found)".into()],
        };
        let seen = if c.first_ms == c.last_ms {
            clock(c.first_ms)
        } else {
            format!("{}–{}", clock(c.first_ms), clock(c.last_ms))
        };
        let port = if c.sockets > 1 {
            format!("{} ({} sockets)", c.remote_port, c.sockets)
        } else {
            c.remote_port.to_string()
        };
        let _ = write!(
            h,
            "<tr><td class=\"num\">{}</td><td>{}</td><td class=\"name\"><b>{}</b></td><td>{}</td>\
             <td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"time\">{}</td><td>{}</td></tr>",
            escape(&pid),
            escape(&user),
            escape(&name),
            escape(&c.protocol),
            escape(&c.remote_addr),
            escape(&port),
            escape(&output::bytes(c.tx_bytes)),
            escape(&output::bytes(c.rx_bytes)),
            escape(&output::rate(c.peak_tx_bytes_per_s)),
            escape(&output::rate(c.peak_rx_bytes_per_s)),
            escape(&seen),
            escape(&c.states.replace(',', ", ")),
        );
    }
    h.push_str("</tbody></table></div></section>");
}

fn sql_section(h: &mut String, d: &ReportData, local: &dyn Fn(TimestampMs) -> String) {
    let (from, to) = (local(d.window.from_ms), local(d.window.to_ms));
    let mut cmds = Vec::new();
    if let Some(i) = &d.focus {
        cmds.push(format!("hogtrap show {}", i.id));
    }
    cmds.push(format!(
        "hogtrap top --from \"{from}\" --to \"{to}\" --by cpu"
    ));
    cmds.push(format!(
        "hogtrap sql \"SELECT time_local, name, pid, cpu_pct, rss_bytes FROM v_process_sample \
         WHERE ts_ms BETWEEN {} AND {} ORDER BY cpu_pct DESC LIMIT 20\"",
        d.window.from_ms, d.window.to_ms
    ));
    cmds.push(format!(
        "hogtrap sql \"SELECT DateAndTime, Load, TopProcesses FROM savetop \
         WHERE DateAndTime BETWEEN '{from}' AND '{to}' ORDER BY Load DESC LIMIT 5\""
    ));
    let _ = write!(
        h,
        "<section id=\"sql\"><h2>Dig further</h2><pre>{}</pre></section>",
        escape(&cmds.join("\n"))
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Window;
    use crate::store::incident::{AlertRow, CulpritRow, IncidentRow};
    use crate::store::query::ProcessOverRange;
    use crate::store::report::{ConnectionSummary, HostPoint, ProcessSeries};

    fn host(ts: i64) -> HostPoint {
        HostPoint {
            ts_ms: ts,
            interval_ms: 1000,
            detail: true,
            cpu_count: 2,
            host_name: "web<1>".into(),
            host: crate::model::HostRow {
                load1: 1.5,
                load5: 1.0,
                load15: 0.5,
                cpu_user_pct: 40.0,
                cpu_system_pct: 10.0,
                mem_total_bytes: 8 << 30,
                mem_used_bytes: 2 << 30,
                psi_cpu: Some(crate::model::Psi {
                    some_avg10: 5.0,
                    ..Default::default()
                }),
                ..Default::default()
            },
        }
    }

    /// Names chosen to break the page if anything were not escaped.
    fn data(focus: bool) -> ReportData {
        let incident = IncidentRow {
            id: 7,
            rule: "cpu_hog".into(),
            rule_file: Some("rules/cpu_hog.lua".into()),
            severity: crate::model::Severity::Warning,
            title: "CPU hog: <burn> \"x\"".into(),
            opened_ms: 1_795_662_005_000,
            updated_ms: 1_795_662_005_000,
            closed_ms: Some(1_795_662_008_000),
            peak: serde_json::json!({"load1": 2.5, "mem_used_bytes": 1024}),
            summary: String::new(),
        };
        let series = |name: &str, pid: u32, id: i64| ProcessSeries {
            process: ProcessOverRange {
                process_id: id,
                pid,
                user: "alice".into(),
                name: name.into(),
                cmdline: format!("/bin/{name} --url https://example.org/"),
                samples: 10,
                avg: 50.0,
                peak: 99.0,
                total: 12.0,
                exited: 0,
            },
            points: (0..10)
                .map(|i| (1_795_662_000_000 + i * 1000, 50.0))
                .collect(),
        };
        ReportData {
            window: Window {
                from_ms: 1_795_662_000_000,
                to_ms: 1_795_662_009_000,
                incident_id: focus.then_some(7),
            },
            generated_ms: 1_795_662_010_000,
            focus: focus.then(|| incident.clone()),
            host: (0..10)
                .map(|i| host(1_795_662_000_000 + i * 1000))
                .collect(),
            top: vec![
                (
                    Resource::Cpu,
                    vec![series("burn<er>", 10, 1), series("talk", 20, 2)],
                ),
                (Resource::Mem, vec![series("talk", 20, 2)]),
                (Resource::Io, Vec::new()),
                (Resource::Net, vec![series("talk", 20, 2)]),
            ],
            incidents: vec![incident],
            culprits: vec![(
                7,
                vec![CulpritRow {
                    resource: Resource::Cpu,
                    rank: 1,
                    pid: 10,
                    name: "burn<er>".into(),
                    value: 99.0,
                    user: Some("alice".into()),
                    cmdline: Some("/bin/burn".into()),
                }],
            )],
            captures: Vec::new(),
            alerts: vec![AlertRow {
                id: 1,
                created_ms: 1_795_662_005_000,
                incident_id: Some(7),
                rule: "cpu_hog".into(),
                channel: "email".into(),
                kind: crate::model::AlertKind::Fire,
                subject: "[hogtrap] <b>".into(),
                status: "sent".into(),
                attempts: 1,
                last_error: None,
                sent_ms: Some(1_795_662_005_500),
            }],
            connections: vec![ConnectionSummary {
                pid: Some(20),
                name: Some("talk".into()),
                user: Some("alice".into()),
                cmdline: None,
                protocol: "tcp".into(),
                remote_addr: "127.0.0.1".into(),
                remote_port: 8443,
                sockets: 1,
                states: "ESTAB".into(),
                first_ms: 1_795_662_001_000,
                last_ms: 1_795_662_009_000,
                tx_bytes: 3.0 * 1024.0 * 1024.0,
                rx_bytes: 0.0,
                peak_tx_bytes_per_s: 1024.0,
                peak_rx_bytes_per_s: 0.0,
            }],
        }
    }

    #[test]
    fn the_page_is_whole_escaped_and_self_contained() {
        for focus in [true, false] {
            let page = render(&data(focus), &TimeZone::UTC);
            assert!(page.starts_with("<!DOCTYPE html>") && page.trim_end().ends_with("</html>"));
            for id in [
                "host",
                "processes",
                "incidents",
                "alerts",
                "connections",
                "sql",
            ] {
                assert!(page.contains(&format!("<section id=\"{id}\">")), "{id}");
            }
            assert_eq!(page.matches("<svg class=\"chart\"").count(), 8);
            // Escaped everywhere; a URL in a command line is text (a tooltip), never a link.
            assert!(!page.contains("<burn") && !page.contains("<b>\""));
            assert!(page.contains("burn&lt;er&gt; (pid 10, alice)"));
            assert!(!page.contains("<script") && !page.contains("@import"));
            let outside: Vec<&str> = page
                .match_indices("href=\"")
                .map(|(at, _)| &page[at + 6..at + 8])
                .filter(|v| !v.starts_with('#'))
                .collect();
            assert!(outside.is_empty(), "{outside:?}");
            assert!(page.contains("title=\"/bin/talk --url https://example.org/\""));
            // The same process has the same color in every chart it is in.
            let talk: Vec<&str> = page
                .match_indices("talk (pid 20, alice) <span class=\"val\">")
                .map(|(at, _)| {
                    let li = page[..at].rfind("background:").unwrap();
                    &page[li + 11..li + 18]
                })
                .collect();
            assert_eq!(talk.len(), 3);
            assert!(talk.iter().all(|c| *c == talk[0]), "{talk:?}");
            assert!(page.contains("@media print"));
        }
        let page = render(&data(true), &TimeZone::UTC);
        assert!(page.contains("band-incident focus"));
        assert!(page.contains("<td class=\"num\">8443</td>"));
    }

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
