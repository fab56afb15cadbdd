//! How the model's enums are stored: each as its text (`Level` as its number), exactly as
//! the schema has always held them.
//!
//! Guarantees: writing stores [`as_str`](crate::model::Severity::as_str) (or
//! [`Level::as_i64`]); reading accepts only those values, and any other stored value is a
//! `FromSqlError` naming it, never a silent default.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};

use crate::model::{AlertKind, Level, Resource, Severity, UnknownValue, Urgency};

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

stored_as_text!(Resource, Severity, Urgency, AlertKind);

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
