//! Lays the view model out on the terminal with ratatui: the header, the process table, the
//! footer, and the overlays (help, connections, prompt). Everything is readable without
//! colour: the selection is reverse video and marks are text; colour (unless `NO_COLOR`)
//! only adds emphasis.

use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Text};
use ratatui::widgets::{Block, Borders, Cell, Clear, Paragraph, Row, Table, TableState};
use ratatui::Frame as Screen;

use super::app::{App, Overlay};
use super::view::{self, Column};
use crate::format::{bytes, short};

/// Whether colour may be used: not when `NO_COLOR` is set to anything non-empty.
pub fn colour_allowed() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// The view as plain text, `width` wide and tall enough for every process row: what
/// `replay` and `live` print when they are not on a terminal.
pub fn text_screen(app: &App, width: u16) -> anyhow::Result<String> {
    let height = (app.rows.len() as u16).saturating_add(9).clamp(12, 500);
    let mut term = ratatui::Terminal::new(ratatui::backend::TestBackend::new(width, height))?;
    term.draw(|f| draw(f, app, false))?;
    let buf = term.backend().buffer();
    let mut out = String::new();
    for y in 0..buf.area.height {
        let mut line = String::new();
        for x in 0..buf.area.width {
            line.push_str(buf[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    Ok(out)
}

pub fn draw(f: &mut Screen, app: &App, colour: bool) {
    let area = f.area();
    let header = view::header(&app.frame, app.mode, &app.opts);
    let [top, middle, bottom] = Layout::vertical([
        Constraint::Length(header.len() as u16),
        Constraint::Min(1),
        Constraint::Length(1),
    ])
    .areas(area);

    let emphasis = |c: Color| {
        if colour {
            Style::new().fg(c).add_modifier(Modifier::BOLD)
        } else {
            Style::new().add_modifier(Modifier::BOLD)
        }
    };
    let lines: Vec<Line> = header
        .into_iter()
        .enumerate()
        .map(|(i, l)| {
            if i == 0 {
                Line::styled(l, Style::new().add_modifier(Modifier::BOLD))
            } else if l.starts_with("!!") {
                Line::styled(l, emphasis(Color::Red))
            } else {
                Line::raw(l)
            }
        })
        .collect();
    f.render_widget(Paragraph::new(lines), top);

    draw_table(f, app, middle, colour);

    let footer = match (&app.overlay, &app.message) {
        (Overlay::Prompt { kind, text }, _) => format!("{}: {text}_", kind.label()),
        (_, Some(m)) => m.clone(),
        _ => view::FOOTER.to_string(),
    };
    f.render_widget(
        Paragraph::new(Line::styled(
            short(&footer, area.width as usize),
            Style::new().add_modifier(Modifier::REVERSED),
        )),
        bottom,
    );

    match &app.overlay {
        Overlay::Help => draw_help(f, area),
        Overlay::Connections {
            title,
            connections,
            detail,
        } => {
            let mut lines: Vec<Line> = Vec::new();
            if connections.is_empty() {
                lines.push(Line::raw(if *detail {
                    "no sockets recorded for this process at this sample"
                } else {
                    "connections are recorded at detail level only: this is a baseline sample"
                }));
            }
            for c in connections {
                let rate = |v: Option<i64>| v.map(|v| bytes(v as f64)).unwrap_or("-".into());
                lines.push(Line::raw(format!(
                    "{} {}:{} -> {}:{}  {}  tx {}/s rx {}/s",
                    c.protocol,
                    c.local_addr,
                    c.local_port,
                    c.remote_addr,
                    c.remote_port,
                    c.state,
                    rate(c.tx_bytes_per_s),
                    rate(c.rx_bytes_per_s)
                )));
            }
            lines.push(Line::raw(""));
            lines.push(Line::raw("any key closes"));
            popup(f, area, &format!("connections of {title}"), lines);
        }
        Overlay::Prompt { .. } | Overlay::None => {}
    }
}

fn draw_table(f: &mut Screen, app: &App, area: Rect, colour: bool) {
    let columns = view::columns_for(area.width);
    let cell = |c: Column, text: String| {
        if c.numeric() {
            Cell::from(Text::from(text).alignment(Alignment::Right))
        } else {
            Cell::from(text)
        }
    };
    let sort_col = match app.opts.sort {
        crate::model::Resource::Cpu => Column::Cpu,
        crate::model::Resource::Mem => Column::Rss,
        crate::model::Resource::Io => {
            if columns.contains(&Column::Io) {
                Column::Io
            } else {
                Column::Read
            }
        }
        crate::model::Resource::Net => Column::Net,
    };
    let head = Row::new(columns.iter().map(|&c| {
        let title = if c == sort_col {
            format!("{}*", c.title())
        } else {
            c.title().to_string()
        };
        cell(c, title)
    }))
    .style(Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED));
    let rows = app
        .rows
        .iter()
        .map(|r| Row::new(columns.iter().map(|&c| cell(c, c.cell(r)))));
    let widths = columns.iter().map(|c| match c.width() {
        Some(w) => Constraint::Length(w),
        None => Constraint::Fill(1),
    });
    let selected = if colour {
        Style::new().add_modifier(Modifier::REVERSED)
    } else {
        Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD)
    };
    let table = Table::new(rows, widths)
        .header(head)
        .column_spacing(1)
        .row_highlight_style(selected);
    let mut state = TableState::default().with_selected(if app.rows.is_empty() {
        None
    } else {
        Some(app.selected)
    });
    f.render_stateful_widget(table, area, &mut state);
    if app.rows.is_empty() && area.height > 1 {
        let msg = if app.opts.filter.is_empty() {
            "no process rows in this sample"
        } else {
            "no process matches the filter (Esc clears it)"
        };
        f.render_widget(
            Paragraph::new(msg),
            Rect {
                y: area.y + 1,
                height: 1,
                ..area
            },
        );
    }
}

fn draw_help(f: &mut Screen, area: Rect) {
    let lines: Vec<Line> = view::HELP
        .iter()
        .map(|(k, what)| Line::raw(format!("{k:<18} {what}")))
        .chain([Line::raw(""), Line::raw("any key closes")])
        .collect();
    popup(f, area, "keys", lines);
}

fn popup(f: &mut Screen, area: Rect, title: &str, lines: Vec<Line>) {
    let height = (lines.len() as u16 + 2).min(area.height);
    let width = area.width.saturating_sub(4).max(10).min(area.width);
    let rect = Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    };
    f.render_widget(Clear, rect);
    f.render_widget(
        Paragraph::new(lines).block(
            Block::default()
                .borders(Borders::ALL)
                .title(format!(" {title} ")),
        ),
        rect,
    );
}
