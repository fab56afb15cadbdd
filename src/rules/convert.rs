//! Lua values to JSON and back: for a firing's values and for persisting a rule's `state`.
//! Bounded in depth and size; functions and coroutines are skipped.

use mlua::{Lua, Table, Value};

use super::view;

const MAX_DEPTH: usize = 32;
/// Entries a rule's `state` (or values) may hold to be persisted.
pub(crate) const MAX_JSON_ENTRIES: usize = 10_000;

pub(crate) fn lua_to_json(lua: &Lua, v: &Value, depth: usize) -> serde_json::Value {
    let mut budget = MAX_JSON_ENTRIES;
    lua_to_json_budget(lua, v, depth, &mut budget)
}

fn lua_to_json_budget(lua: &Lua, v: &Value, depth: usize, budget: &mut usize) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::Nil => J::Null,
        Value::Boolean(b) => J::Bool(*b),
        Value::Integer(i) => J::from(*i),
        Value::Number(n) => serde_json::Number::from_f64(*n).map_or(J::Null, J::Number),
        Value::String(s) => J::String(s.to_string_lossy()),
        Value::Table(t) if depth < MAX_DEPTH => table_to_json_depth(lua, t, depth + 1, budget),
        Value::UserData(ud) => match ud.borrow::<view::ProcView>() {
            Ok(p) => p
                .to_table(lua)
                .map_or(J::Null, |t| table_to_json_depth(lua, &t, depth + 1, budget)),
            Err(_) => J::Null,
        },
        _ => J::Null,
    }
}

/// The rule's `state` table as JSON; `Err` when it is too big to persist.
pub(crate) fn table_to_json(lua: &Lua, t: &Table) -> Result<serde_json::Value, String> {
    let mut budget = MAX_JSON_ENTRIES;
    let v = table_to_json_depth(lua, t, 0, &mut budget);
    if budget == 0 {
        return Err(format!(
            "the state table holds more than {MAX_JSON_ENTRIES} entries; only the first are saved"
        ));
    }
    Ok(match &v {
        serde_json::Value::Object(m) if m.is_empty() => serde_json::Value::Null,
        _ => v,
    })
}

fn table_to_json_depth(
    lua: &Lua,
    t: &Table,
    depth: usize,
    budget: &mut usize,
) -> serde_json::Value {
    let len = t.raw_len();
    let mut count = 0usize;
    let mut map = serde_json::Map::new();
    let mut arr = Vec::new();
    for pair in t.pairs::<Value, Value>() {
        let Ok((k, v)) = pair else { continue };
        if matches!(
            v,
            Value::Function(_) | Value::Thread(_) | Value::LightUserData(_)
        ) {
            continue;
        }
        if *budget == 0 {
            break;
        }
        *budget -= 1;
        count += 1;
        let key = match &k {
            Value::String(s) => s.to_string_lossy(),
            Value::Integer(i) => i.to_string(),
            Value::Number(n) => n.to_string(),
            Value::Boolean(b) => b.to_string(),
            _ => continue,
        };
        map.insert(key, lua_to_json_budget(lua, &v, depth, budget));
    }
    if len > 0 && count == len {
        for i in 1..=len {
            arr.push(
                map.remove(&i.to_string())
                    .unwrap_or(serde_json::Value::Null),
            );
        }
        return serde_json::Value::Array(arr);
    }
    serde_json::Value::Object(map)
}

pub(crate) fn json_to_lua(lua: &Lua, v: &serde_json::Value) -> mlua::Result<Value> {
    use serde_json::Value as J;
    Ok(match v {
        J::Null => Value::Nil,
        J::Bool(b) => Value::Boolean(*b),
        J::Number(n) => match n.as_i64() {
            Some(i) => Value::Integer(i),
            None => Value::Number(n.as_f64().unwrap_or(f64::NAN)),
        },
        J::String(s) => Value::String(lua.create_string(s)?),
        J::Array(a) => {
            let t = lua.create_table_with_capacity(a.len(), 0)?;
            for (i, x) in a.iter().enumerate() {
                t.raw_set(i + 1, json_to_lua(lua, x)?)?;
            }
            Value::Table(t)
        }
        J::Object(m) => {
            let t = lua.create_table_with_capacity(0, m.len())?;
            for (k, x) in m {
                t.raw_set(k.as_str(), json_to_lua(lua, x)?)?;
            }
            Value::Table(t)
        }
    })
}
