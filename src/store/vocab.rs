//! How the model's enums are stored: each as its text (`Level` as its number), exactly as
//! the schema has always held them.
//!
//! Guarantees: writing stores [`as_str`](crate::model::Severity::as_str) (or
//! [`Level::as_i64`]); reading accepts only those values, and any other stored value is a
//! `FromSqlError` naming it, never a silent default.
//!
//! And the way back from a row: [`from_row!`] fills a struct from the columns in the order
//! its fields are named, [`all_rows`] runs a query into a `Vec`.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};

use crate::model::{
    AlertKind, Channel, Level, Resource, SampleReason, Severity, UnknownValue, Urgency,
};

macro_rules! stored_as_text {
    ($($ty:ty),+) => {$(
        impl ToSql for $ty {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_str()))
            }
        }

        impl FromSql for $ty {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                value
                    .as_str()?
                    .parse()
                    .map_err(|e: UnknownValue| FromSqlError::Other(Box::new(e)))
            }
        }
    )+};
}

stored_as_text!(
    Resource,
    Severity,
    Urgency,
    AlertKind,
    SampleReason,
    Channel
);

impl ToSql for Level {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_i64()))
    }
}

impl FromSql for Level {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let unknown = |value: String| {
            FromSqlError::Other(Box::new(UnknownValue {
                what: "level",
                value,
                accepted: &["0 (baseline)", "1 (detail)"],
            }))
        };
        match value {
            ValueRef::Integer(n) => Level::from_i64(n).ok_or_else(|| unknown(n.to_string())),
            ValueRef::Text(t) => Err(unknown(String::from_utf8_lossy(t).into_owned())),
            ValueRef::Real(r) => Err(unknown(r.to_string())),
            ValueRef::Null => Err(unknown("NULL".to_owned())),
            ValueRef::Blob(_) => Err(FromSqlError::InvalidType),
        }
    }
}

/// Fills a struct from a row, one column per named field in order (column 0 first):
/// `from_row!(r => Talker { pid, user, cmdline => redact_owned; remotes: Vec::new() })`. A
/// field given `=> f` gets `f(column)`; those after `;` are filled by no column. `r, from 7`
/// starts at column 7 (a struct nested in a row). Adding a column is one
/// name here and one in the SELECT, with no indices to renumber.
macro_rules! from_row {
    ($row:expr $(, from $start:expr)? => $ty:path {
        $($field:ident $(=> $map:expr)?),+ $(; $($extra:ident: $value:expr),+)? $(,)?
    }) => {{
        let row: &rusqlite::Row<'_> = $row;
        let start: usize = 0 $(+ $start)?;
        let mut column = start..;
        $ty { $($field: from_row!(@get row, column $(, $map)?),)+ $($($extra: $value,)+)? }
    }};
    (@get $row:ident, $column:ident) => {
        $row.get($column.next().unwrap_or_default())?
    };
    (@get $row:ident, $column:ident, $map:expr) => {
        ($map)($row.get($column.next().unwrap_or_default())?)
    };
}
pub(crate) use from_row;

/// Every row `sql` returns for `params`, each through `read`.
pub(crate) fn all_rows<T, P: rusqlite::Params>(
    conn: &rusqlite::Connection,
    sql: &str,
    params: P,
    read: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<Vec<T>> {
    let mut st = conn.prepare(sql)?;
    let rows = st.query_map(params, read)?;
    rows.collect()
}

/// Each enum column: a row written through the store API reads back; the same row with a
/// value the enum does not know (written by hand, as a bad migration or a manual edit
/// would) fails to read with an error naming that value.
#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::incident::{self, Culprit, NewIncident};
    use super::super::outbox::{Channel, DueAlert, NewAlert, Outbox};
    use super::super::{query, Store};
    use crate::model::{AlertKind, Level, Resource, Sample, Severity, Urgency};

    fn open() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db"), Duration::from_secs(1)).unwrap();
        (dir, store)
    }

    fn corrupt(store: &Store, sql: &str) {
        assert_eq!(store.connection().execute(sql, []).unwrap(), 1, "{sql}");
    }

    fn assert_names(err: impl std::fmt::Display, what: &str, value: &str) {
        let err = err.to_string();
        assert!(
            err.contains(&format!("unknown {what} {value}")),
            "the error should name {what} {value}: {err}"
        );
    }

    fn incident_with_culprit(store: &mut Store) -> i64 {
        store
            .open_incident(
                &NewIncident {
                    rule: "cpu_hog",
                    rule_file: "cpu_hog.lua",
                    severity: Severity::Critical,
                    title: "t",
                    summary: "",
                    opened_ms: 1_000,
                    peak_json: "{}",
                },
                &[Culprit {
                    resource: Resource::Io,
                    rank: 1,
                    pid: 42,
                    start_time_ms: 5,
                    name: "dd".into(),
                    cmdline: String::new(),
                    value: 1e6,
                }],
            )
            .unwrap()
    }

    #[test]
    fn incident_severity_unknown_is_an_error() {
        let (_dir, mut store) = open();
        let id = incident_with_culprit(&mut store);
        let row = incident::incident(store.connection(), id).unwrap().unwrap();
        assert_eq!(row.severity, Severity::Critical);
        let stored: String = store
            .connection()
            .query_row("SELECT severity FROM incident", [], |r| r.get(0))
            .unwrap();
        assert_eq!(stored, "critical");

        corrupt(&store, "UPDATE incident SET severity = 'bogus'");
        let err = incident::incident(store.connection(), id).unwrap_err();
        assert_names(err, "severity", "\"bogus\"");
        let err = incident::list_incidents(store.connection(), None, None, false).unwrap_err();
        assert_names(err, "severity", "\"bogus\"");
    }

    #[test]
    fn culprit_resource_unknown_is_an_error() {
        let (_dir, mut store) = open();
        let id = incident_with_culprit(&mut store);
        let rows = incident::culprits(store.connection(), id).unwrap();
        assert_eq!(rows[0].resource, Resource::Io);

        corrupt(&store, "UPDATE incident_culprit SET resource = 'disk'");
        let err = incident::culprits(store.connection(), id).unwrap_err();
        assert_names(err, "resource", "\"disk\"");
    }

    fn queued(dir: &tempfile::TempDir, store: &mut Store) -> Outbox {
        let alert = NewAlert {
            created_ms: 1_000,
            incident_id: None,
            rule: "load".into(),
            kind: AlertKind::Reminder,
            subject: "s".into(),
            body_text: "b".into(),
            body_html: None,
            urgency: Urgency::Low,
            recipients: Vec::new(),
        };
        store.enqueue_alert(&alert, &[Channel::Email], 0).unwrap();
        // The delivery side reads on its own connection, as in the daemon.
        Outbox::open(&dir.path().join("t.db"), Duration::from_secs(1)).unwrap()
    }

    /// The queued alert reads back (`check`); after `update` the outbox fails to read it,
    /// naming `what` and `value`.
    fn outbox_rejects(check: impl Fn(&DueAlert), update: &str, what: &str, value: &str) {
        let (dir, mut store) = open();
        let outbox = queued(&dir, &mut store);
        check(&outbox.due(2_000, 10).unwrap()[0]);
        corrupt(&store, update);
        assert_names(outbox.due(2_000, 10).unwrap_err(), what, value);
    }

    #[test]
    fn outbox_urgency_unknown_is_an_error() {
        // A typo used to read back as `normal`.
        let low = |due: &DueAlert| assert_eq!(due.content.urgency, Urgency::Low);
        outbox_rejects(
            low,
            "UPDATE alert SET urgency = 'urgent'",
            "urgency",
            "\"urgent\"",
        );
    }

    #[test]
    fn outbox_kind_unknown_is_an_error() {
        let reminder = |due: &DueAlert| assert_eq!(due.content.kind, AlertKind::Reminder);
        outbox_rejects(
            reminder,
            "UPDATE alert SET kind = 'page'",
            "alert kind",
            "\"page\"",
        );
    }

    #[test]
    fn outbox_channel_unknown_is_an_error() {
        let email = |due: &DueAlert| assert_eq!(due.channel, Channel::Email);
        outbox_rejects(
            email,
            "UPDATE alert SET channel = 'pager'",
            "alert channel",
            "\"pager\"",
        );
    }

    #[test]
    fn sample_level_unknown_is_an_error() {
        let (_dir, mut store) = open();
        let sample = Sample {
            ts_ms: 1_000,
            host_name: "h1".into(),
            level: Level::Detail,
            ..Default::default()
        };
        store.write_sample(&sample).unwrap();
        let conn = store.connection();
        assert_eq!(
            query::sample_at(conn, 1_000).unwrap().unwrap().level,
            Level::Detail
        );
        assert_eq!(
            query::load_samples(conn, 0, 2_000, false).unwrap()[0].level,
            Level::Detail
        );

        // Only 0 and 1 are levels; 2 used to read back as baseline.
        corrupt(&store, "UPDATE sample SET level = 2");
        assert_names(query::sample_at(conn, 1_000).unwrap_err(), "level", "\"2\"");
        corrupt(&store, "UPDATE sample SET level = 'bogus'");
        assert_names(
            query::load_samples(conn, 0, 2_000, false).unwrap_err(),
            "level",
            "\"bogus\"",
        );
        assert_names(query::status(conn, 0).unwrap_err(), "level", "\"bogus\"");
    }
}
