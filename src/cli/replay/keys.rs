//! Which key does what: a key press becomes an [`Action`], or edits the open prompt. Pure,
//! so the map is tested without a terminal (`view::HELP` lists the same keys for `?`).

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::view::GroupBy;
use crate::model::Resource;

/// What the user asked for.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Quit,
    /// One sample forward (`true`) or back.
    Step(bool),
    First,
    Last,
    /// Open the "jump to a time" prompt.
    AskTime,
    /// Next (`true`) or previous incident.
    Incident(bool),
    /// Next (`true`) or previous gap.
    Gap(bool),
    Sort(Resource),
    /// Group by this (or ungroup, when it is the current grouping).
    Group(GroupBy),
    /// Open the name filter prompt.
    AskFilter,
    /// Move the selection by this many rows.
    Select(i32),
    Connections,
    Help,
    /// Close an overlay or prompt.
    Close,
    /// A prompt's text is complete.
    Submit(String),
    Nothing,
}

/// Rows a page key moves.
pub const PAGE: i32 = 10;

fn is_ctrl_c(k: &KeyEvent) -> bool {
    k.modifiers.contains(KeyModifiers::CONTROL) && matches!(k.code, KeyCode::Char('c' | 'C'))
}

/// The action of a key in the main view.
pub fn action(k: KeyEvent) -> Action {
    if k.kind == KeyEventKind::Release {
        return Action::Nothing;
    }
    if is_ctrl_c(&k) {
        return Action::Quit;
    }
    match k.code {
        KeyCode::Char('q') => Action::Quit,
        KeyCode::Char('t' | 'l') | KeyCode::Right => Action::Step(true),
        KeyCode::Char('T' | 'h') | KeyCode::Left => Action::Step(false),
        KeyCode::Home => Action::First,
        KeyCode::End => Action::Last,
        KeyCode::Char('b') => Action::AskTime,
        KeyCode::Char('i') => Action::Incident(true),
        KeyCode::Char('I') => Action::Incident(false),
        KeyCode::Char('g') => Action::Gap(true),
        KeyCode::Char('G') => Action::Gap(false),
        KeyCode::Char('c') => Action::Sort(Resource::Cpu),
        KeyCode::Char('m') => Action::Sort(Resource::Mem),
        KeyCode::Char('d') => Action::Sort(Resource::Io),
        KeyCode::Char('n') => Action::Sort(Resource::Net),
        KeyCode::Char('p') => Action::Group(GroupBy::Program),
        KeyCode::Char('u') => Action::Group(GroupBy::User),
        KeyCode::Char('a') => Action::Group(GroupBy::Parent),
        KeyCode::Char('o') => Action::Group(GroupBy::Cgroup),
        KeyCode::Char('/') => Action::AskFilter,
        KeyCode::Down | KeyCode::Char('j') => Action::Select(1),
        KeyCode::Up | KeyCode::Char('k') => Action::Select(-1),
        KeyCode::PageDown => Action::Select(PAGE),
        KeyCode::PageUp => Action::Select(-PAGE),
        KeyCode::Enter => Action::Connections,
        KeyCode::Char('?') => Action::Help,
        KeyCode::Esc => Action::Close,
        _ => Action::Nothing,
    }
}

/// A key while an overlay (help, connections) is shown: `q` and Ctrl-C still quit, any
/// other key closes it.
pub fn overlay_action(k: KeyEvent) -> Action {
    if k.kind == KeyEventKind::Release {
        return Action::Nothing;
    }
    if is_ctrl_c(&k) || k.code == KeyCode::Char('q') {
        return Action::Quit;
    }
    Action::Close
}

/// A key while a prompt is open: edits `text`; Enter submits it, Esc cancels.
pub fn prompt_action(k: KeyEvent, text: &mut String) -> Action {
    if k.kind == KeyEventKind::Release {
        return Action::Nothing;
    }
    if is_ctrl_c(&k) {
        return Action::Quit;
    }
    match k.code {
        KeyCode::Enter => Action::Submit(std::mem::take(text)),
        KeyCode::Esc => Action::Close,
        KeyCode::Backspace => {
            text.pop();
            Action::Nothing
        }
        KeyCode::Char(c) => {
            text.push(c);
            Action::Nothing
        }
        _ => Action::Nothing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(c: KeyCode) -> KeyEvent {
        KeyEvent::new(c, KeyModifiers::NONE)
    }

    #[test]
    fn atop_keys_step_sort_and_group() {
        assert_eq!(action(key(KeyCode::Char('t'))), Action::Step(true));
        assert_eq!(action(key(KeyCode::Char('T'))), Action::Step(false));
        assert_eq!(action(key(KeyCode::Left)), Action::Step(false));
        assert_eq!(action(key(KeyCode::Char('m'))), Action::Sort(Resource::Mem));
        assert_eq!(action(key(KeyCode::Char('d'))), Action::Sort(Resource::Io));
        assert_eq!(
            action(key(KeyCode::Char('u'))),
            Action::Group(GroupBy::User)
        );
        assert_eq!(action(key(KeyCode::Char('i'))), Action::Incident(true));
        assert_eq!(action(key(KeyCode::Char('G'))), Action::Gap(false));
        assert_eq!(action(key(KeyCode::Char('x'))), Action::Nothing);
    }

    #[test]
    fn q_and_ctrl_c_quit_everywhere() {
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(action(ctrl_c), Action::Quit);
        assert_eq!(action(key(KeyCode::Char('q'))), Action::Quit);
        assert_eq!(overlay_action(ctrl_c), Action::Quit);
        assert_eq!(overlay_action(key(KeyCode::Char('z'))), Action::Close);
        let mut text = String::new();
        assert_eq!(prompt_action(ctrl_c, &mut text), Action::Quit);
        // In a prompt, q is a letter.
        assert_eq!(
            prompt_action(key(KeyCode::Char('q')), &mut text),
            Action::Nothing
        );
        assert_eq!(text, "q");
    }

    #[test]
    fn a_prompt_edits_and_submits() {
        let mut text = String::new();
        for c in "03:1x".chars() {
            prompt_action(key(KeyCode::Char(c)), &mut text);
        }
        prompt_action(key(KeyCode::Backspace), &mut text);
        prompt_action(key(KeyCode::Char('2')), &mut text);
        assert_eq!(
            prompt_action(key(KeyCode::Enter), &mut text),
            Action::Submit("03:12".into())
        );
        assert!(text.is_empty());
        assert_eq!(prompt_action(key(KeyCode::Esc), &mut text), Action::Close);
    }
}
