//! `docs/schema.md` names every table, view and column of the live schema.

use rusqlite::Connection;

#[test]
fn schema_doc_names_every_table_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    drop(hogtrap::store::Store::open(&path, std::time::Duration::from_millis(100)).unwrap());
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/schema.md")).unwrap();
    let conn = Connection::open(&path).unwrap();
    let mut st = conn
        .prepare("SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%'")
        .unwrap();
    let names: Vec<String> = st
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(names.len() >= 10);
    let mut missing = Vec::new();
    for t in &names {
        if !doc.contains(&format!("### `{t}`")) {
            missing.push(format!("table {t}"));
        }
        let mut cols = conn.prepare(&format!("PRAGMA table_info({t})")).unwrap();
        let cols: Vec<String> = cols
            .query_map([], |r| r.get(1))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        for c in cols {
            if !doc.contains(&format!("`{c}`")) {
                missing.push(format!("{t}.{c}"));
            }
        }
    }
    assert!(missing.is_empty(), "docs/schema.md lacks: {missing:?}");
}
