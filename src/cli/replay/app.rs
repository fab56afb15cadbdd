//! The state of one replay session: which sample is shown, the user's choices, the table
//! they give, the selection, and what is drawn over the view. [`App::apply`] carries out an
//! [`Action`] against the read-only store.

use rusqlite::Connection;

use super::keys::Action;
use super::view::{self, GroupBy, Mode, RowKey, TableRow, ViewOptions};
use crate::cli::time;
use crate::store::replay::{self as store, Frame, ReplayConnection, SampleRef};

/// What is drawn over the view, and takes the keys while it is there.
#[derive(Debug, Clone, PartialEq)]
pub enum Overlay {
    None,
    Help,
    /// The connections of a process at the shown sample.
    Connections {
        title: String,
        connections: Vec<ReplayConnection>,
        detail: bool,
    },
    /// A prompt in the bottom line: what it asks for, the text so far.
    Prompt {
        kind: PromptKind,
        text: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptKind {
    Time,
    Filter,
}

impl PromptKind {
    pub fn label(self) -> &'static str {
        match self {
            PromptKind::Time => "jump to time",
            PromptKind::Filter => "filter by name",
        }
    }
}

pub struct App<'c> {
    conn: &'c Connection,
    pub mode: Mode,
    pub frame: Frame,
    pub opts: ViewOptions,
    pub rows: Vec<TableRow>,
    pub selected: usize,
    pub overlay: Overlay,
    /// A one-line note in the footer until the next key ("no later sample").
    pub message: Option<String>,
    pub quit: bool,
}

impl<'c> App<'c> {
    pub fn new(conn: &'c Connection, frame: Frame, mode: Mode) -> App<'c> {
        let mut app = App {
            conn,
            mode,
            frame,
            opts: ViewOptions::default(),
            rows: Vec::new(),
            selected: 0,
            overlay: Overlay::None,
            message: None,
            quit: false,
        };
        app.rebuild();
        app
    }

    fn selected_key(&self) -> Option<RowKey> {
        self.rows.get(self.selected).map(|r| r.key.clone())
    }

    /// Recomputes the table, keeping the selection on the same process or group if it is
    /// still there.
    fn rebuild(&mut self) {
        let key = self.selected_key();
        self.rows = view::table(&self.frame.processes, &self.opts);
        self.selected = key
            .and_then(|k| self.rows.iter().position(|r| r.key == k))
            .unwrap_or(0)
            .min(self.rows.len().saturating_sub(1));
    }

    /// Shows the sample `at`.
    pub fn go(&mut self, at: SampleRef) -> anyhow::Result<()> {
        self.go_known(at, None)
    }

    /// Shows the sample `at`, whose position and the record's length are `known` when set.
    fn go_known(&mut self, at: SampleRef, known: Option<(i64, i64)>) -> anyhow::Result<()> {
        if let Some(frame) = store::frame_at(self.conn, at, known)? {
            self.frame = frame;
            self.rebuild();
        }
        Ok(())
    }

    fn go_or_say(&mut self, at: Option<SampleRef>, none: &str) -> anyhow::Result<()> {
        match at {
            Some(at) => self.go(at),
            None => {
                self.message = Some(none.to_string());
                Ok(())
            }
        }
    }

    fn stop_following(&mut self) {
        if let Mode::Live { .. } = self.mode {
            self.mode = Mode::Live { following: false };
        }
    }

    /// In live mode and following: moves to the newest sample if one was written since.
    pub fn refresh(&mut self) -> anyhow::Result<bool> {
        if self.mode != (Mode::Live { following: true }) {
            return Ok(false);
        }
        match store::last_sample(self.conn)? {
            Some(last) if last != self.frame.at => {
                // Following, we were on the newest sample: the new ones come after it.
                let total = self.frame.total + store::count_after(self.conn, self.frame.at.ts_ms)?;
                self.go_known(last, Some((total, total)))?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    pub fn apply(&mut self, action: Action) -> anyhow::Result<()> {
        if action != Action::Nothing {
            self.message = None;
        }
        let at = self.frame.at;
        match action {
            Action::Nothing => {}
            Action::Quit => self.quit = true,
            Action::Step(forward) => {
                self.stop_following();
                match store::step(self.conn, at, forward)? {
                    // One step from a known position: no need to count the record again.
                    Some(next) => {
                        let position = self.frame.position + if forward { 1 } else { -1 };
                        let total = self.frame.total.max(position);
                        self.go_known(next, Some((position, total)))?;
                    }
                    None => {
                        self.message = Some(
                            if forward {
                                "no later sample"
                            } else {
                                "no earlier sample"
                            }
                            .into(),
                        )
                    }
                }
            }
            Action::First => {
                self.stop_following();
                let first = store::first_sample(self.conn)?;
                self.go_or_say(first, "the record is empty")?;
            }
            Action::Last => {
                if let Mode::Live { .. } = self.mode {
                    self.mode = Mode::Live { following: true };
                }
                let last = store::last_sample(self.conn)?;
                self.go_or_say(last, "the record is empty")?;
            }
            Action::Incident(forward) => {
                self.stop_following();
                match store::incident_step(self.conn, at, forward)? {
                    Some((id, sample)) => {
                        self.go(sample)?;
                        self.message = Some(format!("incident #{id} opens here"));
                    }
                    None => {
                        self.message = Some(
                            if forward {
                                "no later incident"
                            } else {
                                "no earlier incident"
                            }
                            .into(),
                        )
                    }
                }
            }
            Action::Gap(forward) => {
                self.stop_following();
                let next = store::gap_step(self.conn, at, forward)?;
                let none = if forward {
                    "no later gap"
                } else {
                    "no earlier gap"
                };
                self.go_or_say(next, none)?;
                if next.is_some() {
                    self.message = Some("the first sample after a gap".into());
                }
            }
            Action::Sort(by) => {
                self.opts.sort = by;
                self.rebuild();
                self.selected = 0;
            }
            Action::Group(g) => {
                self.opts.group = if self.opts.group == g {
                    GroupBy::None
                } else {
                    g
                };
                self.rebuild();
            }
            Action::AskTime => {
                self.overlay = Overlay::Prompt {
                    kind: PromptKind::Time,
                    text: String::new(),
                }
            }
            Action::AskFilter => {
                self.overlay = Overlay::Prompt {
                    kind: PromptKind::Filter,
                    text: self.opts.filter.clone(),
                }
            }
            Action::Submit(text) => {
                let kind = match &self.overlay {
                    Overlay::Prompt { kind, .. } => Some(*kind),
                    _ => None,
                };
                self.overlay = Overlay::None;
                match kind {
                    Some(PromptKind::Time) => match time::parse_time(text.trim()) {
                        Ok(t) => {
                            self.stop_following();
                            let near = store::sample_near(self.conn, t)?;
                            self.go_or_say(near, "the record is empty")?;
                        }
                        Err(e) => self.message = Some(e),
                    },
                    Some(PromptKind::Filter) => {
                        self.opts.filter = text.trim().to_string();
                        self.rebuild();
                    }
                    None => {}
                }
            }
            Action::Select(by) => {
                let last = self.rows.len().saturating_sub(1) as i64;
                self.selected = (self.selected as i64 + by as i64).clamp(0, last.max(0)) as usize;
            }
            Action::Connections => self.open_connections()?,
            Action::Help => self.overlay = Overlay::Help,
            Action::Close => {
                if self.overlay == Overlay::None && !self.opts.filter.is_empty() {
                    self.opts.filter.clear();
                    self.rebuild();
                }
                self.overlay = Overlay::None;
            }
        }
        Ok(())
    }

    fn open_connections(&mut self) -> anyhow::Result<()> {
        let Some(row) = self.rows.get(self.selected) else {
            return Ok(());
        };
        let RowKey::Process { pid, .. } = row.key else {
            self.message = Some("connections are per process: ungroup first".into());
            return Ok(());
        };
        let connections = store::connections_of(self.conn, self.frame.at.id, pid)?;
        self.overlay = Overlay::Connections {
            title: format!("{} (pid {pid})", row.name),
            connections,
            detail: self.frame.sample.level == crate::model::Level::Detail,
        };
        Ok(())
    }
}
