//! The Lua view of a [`Sample`]: built once per sample, shared read-only by every rule.
//!
//! The root and its small sub-tables are built eagerly. Per-process tables are built lazily,
//! at most once per sample: `s.procs` materialises them all on first use; `s:top(n, by)`
//! builds only the processes it returns. Every table a rule can reach is a read-only proxy.

use std::sync::Arc;

use mlua::{Function, Lua, Table, Value};

use crate::model::{Level, ProcessRow, Psi, Sample};

/// What the view's Rust callbacks need, kept as Lua app data on the worker's state.
pub(crate) struct ViewCtx {
    pub sample: Option<Arc<Sample>>,
    /// Built process proxies of the current sample, by 1-based index.
    pub cache: Option<Table>,
    pub freeze: Function,
    /// Metatable of the root's backing table (lazy `procs`/`connections`).
    pub lazy_meta: Table,
    /// Methods (`top`, `find`) every root exposes.
    pub methods: Table,
}

type Parts = (Arc<Sample>, Table, Function);

fn ctx_parts(lua: &Lua) -> mlua::Result<Parts> {
    let ctx = lua
        .app_data_ref::<ViewCtx>()
        .ok_or_else(|| mlua::Error::runtime("no sample view"))?;
    let sample = ctx
        .sample
        .clone()
        .ok_or_else(|| mlua::Error::runtime("the sample view is only valid during a rule call"))?;
    let cache = ctx
        .cache
        .clone()
        .ok_or_else(|| mlua::Error::runtime("no sample view"))?;
    Ok((sample, cache, ctx.freeze.clone()))
}

/// Creates the shared functions (`top`, the lazy loader). Call once per Lua state.
pub(crate) fn view_api(lua: &Lua, methods: &Table) -> mlua::Result<Table> {
    let top = lua.create_function(|lua, (_s, n, by): (Value, Option<i64>, Option<String>)| {
        match top(lua, n.unwrap_or(5), by.as_deref().unwrap_or("cpu")) {
            Ok(t) => Ok((Some(t), None::<String>)),
            Err(TopError::Usage(msg)) => Ok((None, Some(msg))),
            Err(TopError::Lua(e)) => Err(e),
        }
    })?;
    methods.raw_set("top", top)?;
    let top_groups = lua.create_function(
        |lua, (_s, n, by, how): (Value, Option<i64>, Option<String>, Option<String>)| {
            match top_groups(
                lua,
                n.unwrap_or(5),
                by.as_deref().unwrap_or("cpu"),
                how.as_deref().unwrap_or("name"),
            ) {
                Ok(t) => Ok((Some(t), None::<String>)),
                Err(TopError::Usage(msg)) => Ok((None, Some(msg))),
                Err(TopError::Lua(e)) => Err(e),
            }
        },
    )?;
    methods.raw_set("top_groups", top_groups)?;
    let lazy = lua.create_function(|lua, (real, key): (Table, Value)| {
        let Value::String(key) = key else {
            return Ok(Value::Nil);
        };
        let built = match key.as_bytes().as_ref() {
            b"procs" => all_procs(lua)?,
            b"connections" => connections(lua)?,
            _ => return Ok(Value::Nil),
        };
        real.raw_set(key, &built)?;
        Ok(Value::Table(built))
    })?;
    let meta = lua.create_table()?;
    meta.raw_set("__index", lazy)?;
    Ok(meta)
}

enum TopError {
    Usage(String),
    Lua(mlua::Error),
}

impl From<mlua::Error> for TopError {
    fn from(e: mlua::Error) -> Self {
        TopError::Lua(e)
    }
}

fn top(lua: &Lua, n: i64, by: &str) -> Result<Table, TopError> {
    let (sample, cache, _freeze) = ctx_parts(lua)?;
    let key: fn(&ProcessRow) -> f64 = match by {
        "cpu" => |p| p.cpu_pct,
        "mem" | "rss" => |p| p.rss_bytes as f64,
        "io" => |p| p.read_bytes_per_s + p.write_bytes_per_s,
        "net" => |p| p.net_tx_bytes_per_s.unwrap_or(0.0) + p.net_rx_bytes_per_s.unwrap_or(0.0),
        other => {
            return Err(TopError::Usage(format!(
                "top: unknown resource {other:?} (use \"cpu\", \"mem\", \"io\" or \"net\")"
            )))
        }
    };
    super::sandbox::charge(sample.processes.len());
    let n = n.clamp(0, sample.processes.len() as i64) as usize;
    let mut idx: Vec<usize> = (0..sample.processes.len()).collect();
    let cmp =
        |a: &usize, b: &usize| key(&sample.processes[*b]).total_cmp(&key(&sample.processes[*a]));
    if n > 0 && n < idx.len() {
        idx.select_nth_unstable_by(n - 1, cmp);
        idx.truncate(n);
    }
    idx.sort_by(cmp);
    idx.truncate(n);
    let out = lua.create_table_with_capacity(n, 0)?;
    for (k, i) in idx.into_iter().enumerate() {
        out.raw_set(k + 1, proc_view(&sample, &cache, lua, i)?)?;
    }
    Ok(out)
}

/// `s:top_groups(n, by, how)`: the `n` largest groups of processes (live and exited in this
/// sample) by resource `by`, grouped by `how` (name, parent, user, cgroup).
fn top_groups(lua: &Lua, n: i64, by: &str, how: &str) -> Result<Table, TopError> {
    let (sample, _cache, freeze) = ctx_parts(lua)?;
    let by: crate::model::Resource = by
        .parse()
        .map_err(|e| TopError::Usage(format!("top_groups: {e}")))?;
    let how: crate::model::Grouping = how
        .parse()
        .map_err(|e| TopError::Usage(format!("top_groups: {e}")))?;
    super::sandbox::charge(sample.processes.len() + sample.exits.len());
    let groups = crate::model::group::groups_of(&sample, by, how);
    let n = n.clamp(0, groups.len() as i64) as usize;
    let out = lua.create_table_with_capacity(n, 0)?;
    for (k, g) in groups.into_iter().take(n).enumerate() {
        let t = lua.create_table_with_capacity(0, 7)?;
        t.raw_set("group", how.as_str())?;
        t.raw_set("key", g.key.as_str())?;
        t.raw_set("label", g.label.as_str())?;
        t.raw_set("processes", g.processes)?;
        t.raw_set("exited", g.exited)?;
        t.raw_set("value", g.value)?;
        t.raw_set("largest", g.largest)?;
        out.raw_set(k + 1, freeze.call::<Table>(t)?)?;
    }
    Ok(freeze.call(out)?)
}

fn proc_view(sample: &Arc<Sample>, cache: &Table, lua: &Lua, i: usize) -> mlua::Result<Value> {
    if let v @ Value::UserData(_) = cache.raw_get::<Value>(i + 1)? {
        return Ok(v);
    }
    let ud = lua.create_userdata(ProcView {
        sample: sample.clone(),
        idx: i,
    })?;
    cache.raw_set(i + 1, &ud)?;
    Ok(Value::UserData(ud))
}

/// One process as rules see it: a read-only userdata whose fields are read straight from the
/// shared sample (no per-field copies; building 1,000 of them is cheap).
pub(crate) struct ProcView {
    sample: Arc<Sample>,
    idx: usize,
}

/// `chunk:line: ` of the innermost Lua function on the stack, as `error(msg, 1)` would add.
pub(crate) fn lua_where(lua: &Lua) -> String {
    for level in 0..8 {
        let found = lua.inspect_stack(level, |d| {
            let line = d.current_line()?;
            let src = d.source().short_src.map(|s| s.into_owned())?;
            Some(format!("{src}:{line}: "))
        });
        match found {
            None => break,
            Some(Some(w)) => return w,
            Some(None) => {}
        }
    }
    String::new()
}

/// Field names of a process, in `pairs` order.
const PROC_FIELDS: &[&str] = &[
    "pid",
    "ppid",
    "uid",
    "user",
    "name",
    "cmdline",
    "started",
    "state",
    "cpu",
    "rss",
    "read_bps",
    "write_bps",
    "threads",
    "net_tx_bps",
    "net_rx_bps",
    "fds",
    "wchan",
    "cgroup",
];

impl ProcView {
    fn row(&self) -> &ProcessRow {
        &self.sample.processes[self.idx]
    }

    pub(crate) fn field(&self, lua: &Lua, key: &[u8]) -> mlua::Result<Value> {
        let p = self.row();
        let extra = p.extra.as_ref();
        Ok(match key {
            b"pid" => Value::Integer(p.id.pid.into()),
            b"ppid" => Value::Integer(p.id.ppid.into()),
            b"uid" => Value::Integer(p.id.uid.into()),
            b"user" => Value::String(lua.create_string(&p.id.user)?),
            b"name" => Value::String(lua.create_string(&p.id.name)?),
            b"cmdline" => Value::String(lua.create_string(&p.id.cmdline)?),
            b"started" => Value::Number(p.id.start_time_ms as f64 / 1000.0),
            b"state" => {
                let mut buf = [0u8; 4];
                Value::String(lua.create_string(p.state.encode_utf8(&mut buf).as_bytes())?)
            }
            b"cpu" => Value::Number(p.cpu_pct),
            b"rss" => Value::Integer(p.rss_bytes.min(i64::MAX as u64) as i64),
            b"read_bps" => Value::Number(p.read_bytes_per_s),
            b"write_bps" => Value::Number(p.write_bytes_per_s),
            b"threads" => Value::Integer(p.threads.into()),
            b"net_tx_bps" => p.net_tx_bytes_per_s.map_or(Value::Nil, Value::Number),
            b"net_rx_bps" => p.net_rx_bytes_per_s.map_or(Value::Nil, Value::Number),
            b"fds" => extra
                .and_then(|e| e.open_fds)
                .map_or(Value::Nil, |v| Value::Integer(v.into())),
            b"wchan" => match extra.and_then(|e| e.wchan.as_deref()) {
                Some(w) => Value::String(lua.create_string(w)?),
                None => Value::Nil,
            },
            b"cgroup" => match extra.and_then(|e| e.cgroup.as_deref()) {
                Some(c) => Value::String(lua.create_string(c)?),
                None => Value::Nil,
            },
            _ => Value::Nil,
        })
    }

    /// The process as a plain (fresh, mutable) table.
    pub(crate) fn to_table(&self, lua: &Lua) -> mlua::Result<Table> {
        let t = lua.create_table_with_capacity(0, PROC_FIELDS.len())?;
        for name in PROC_FIELDS {
            t.raw_set(*name, self.field(lua, name.as_bytes())?)?;
        }
        Ok(t)
    }
}

impl mlua::UserData for ProcView {
    fn add_methods<M: mlua::UserDataMethods<Self>>(methods: &mut M) {
        methods.add_meta_method(mlua::MetaMethod::Index, |lua, this, key: Value| match key {
            Value::String(k) => this.field(lua, &k.as_bytes()),
            _ => Ok(Value::Nil),
        });
        methods.add_meta_method(
            mlua::MetaMethod::NewIndex,
            |lua, _, (k, _): (Value, Value)| {
                Err::<(), _>(mlua::Error::runtime(format!(
                    "{}attempt to modify a read-only process (field '{}')",
                    lua_where(lua),
                    k.to_string().unwrap_or_default()
                )))
            },
        );
        methods.add_meta_method(mlua::MetaMethod::Pairs, |lua, this, ()| {
            let next: Function = lua.globals().raw_get("next")?;
            Ok((next, this.to_table(lua)?, Value::Nil))
        });
        methods.add_meta_method(mlua::MetaMethod::ToString, |_, this, ()| {
            let p = this.row();
            Ok(format!("process {} ({})", p.id.pid, p.id.name))
        });
        methods.add_method("copy", |lua, this, ()| this.to_table(lua));
    }
}

fn all_procs(lua: &Lua) -> mlua::Result<Table> {
    let (sample, cache, freeze) = ctx_parts(lua)?;
    let arr = lua.create_table_with_capacity(sample.processes.len(), 0)?;
    for i in 0..sample.processes.len() {
        arr.raw_set(i + 1, proc_view(&sample, &cache, lua, i)?)?;
    }
    freeze.call(arr)
}

fn connections(lua: &Lua) -> mlua::Result<Table> {
    let (sample, _cache, freeze) = ctx_parts(lua)?;
    let arr = lua.create_table_with_capacity(sample.connections.len(), 0)?;
    for (i, c) in sample.connections.iter().enumerate() {
        let t = lua.create_table_with_capacity(0, 9)?;
        t.raw_set("pid", c.pid)?;
        t.raw_set(
            "proto",
            match c.protocol {
                crate::model::Protocol::Tcp => "tcp",
                crate::model::Protocol::Udp => "udp",
            },
        )?;
        t.raw_set("local_addr", c.local_addr.as_str())?;
        t.raw_set("local_port", c.local_port)?;
        t.raw_set("remote_addr", c.remote_addr.as_str())?;
        t.raw_set("remote_port", c.remote_port)?;
        t.raw_set("state", c.state.as_str())?;
        t.raw_set("tx_bps", c.tx_bytes_per_s)?;
        t.raw_set("rx_bps", c.rx_bytes_per_s)?;
        arr.raw_set(i + 1, freeze.call::<Table>(t)?)?;
    }
    freeze.call(arr)
}

/// Builds the root `s` for `sample` and makes it current. Returns the read-only proxy.
pub(crate) fn build_root(lua: &Lua, sample: Arc<Sample>) -> mlua::Result<Table> {
    let (freeze, lazy_meta, methods) = {
        let mut ctx = lua
            .app_data_mut::<ViewCtx>()
            .ok_or_else(|| mlua::Error::runtime("no view context"))?;
        ctx.sample = Some(sample.clone());
        ctx.cache = Some(lua.create_table_with_capacity(sample.processes.len(), 0)?);
        (
            ctx.freeze.clone(),
            ctx.lazy_meta.clone(),
            ctx.methods.clone(),
        )
    };
    let h = &sample.host;
    let frozen = |t: Table| -> mlua::Result<Table> { freeze.call(t) };
    let r = lua.create_table_with_capacity(0, 32)?;
    r.raw_set("time", sample.ts_ms as f64 / 1000.0)?;
    r.raw_set("time_ms", sample.ts_ms)?;
    r.raw_set("host", sample.host_name.as_str())?;
    r.raw_set("cpus", sample.cpu_count)?;
    r.raw_set(
        "level",
        match sample.level {
            Level::Baseline => "baseline",
            Level::Detail => "detail",
        },
    )?;
    r.raw_set("interval", sample.interval_ms as f64 / 1000.0)?;
    r.raw_set("late", sample.late_ms as f64 / 1000.0)?;
    r.raw_set("reason", sample.reason.as_str())?;
    r.raw_set("load1", h.load1)?;
    r.raw_set("load5", h.load5)?;
    r.raw_set("load15", h.load15)?;

    // A frozen table of named fields, each keeping its own Lua type (integer or number).
    macro_rules! fields {
        ($($key:literal: $value:expr),+ $(,)?) => {{
            let t = lua.create_table_with_capacity(0, [$($key),+].len())?;
            $(t.raw_set($key, $value)?;)+
            frozen(t)?
        }};
    }
    let busy = (100.0 - h.cpu_idle_pct).max(0.0);
    r.raw_set(
        "cpu",
        fields! {
            "user": h.cpu_user_pct, "system": h.cpu_system_pct, "iowait": h.cpu_iowait_pct,
            "steal": h.cpu_steal_pct, "idle": h.cpu_idle_pct, "busy": busy,
        },
    )?;

    let pct = |used: u64, total: u64| {
        if total == 0 {
            0.0
        } else {
            used as f64 * 100.0 / total as f64
        }
    };
    r.raw_set(
        "mem",
        fields! {
            "total": h.mem_total_bytes, "used": h.mem_used_bytes,
            "available": h.mem_available_bytes,
            "used_pct": pct(h.mem_used_bytes, h.mem_total_bytes),
        },
    )?;
    r.raw_set(
        "swap",
        fields! {
            "total": h.swap_total_bytes, "used": h.swap_used_bytes,
            "used_pct": pct(h.swap_used_bytes, h.swap_total_bytes),
        },
    )?;

    let psi = lua.create_table_with_capacity(0, 3)?;
    let psi_table = |p: &Option<Psi>| -> mlua::Result<Option<Table>> {
        let Some(p) = p else { return Ok(None) };
        Ok(Some(fields! {
            "some_avg10": p.some_avg10, "some_total_us": p.some_total_us,
            "full_avg10": p.full_avg10, "full_total_us": p.full_total_us,
        }))
    };
    psi.raw_set("cpu", psi_table(&h.psi_cpu)?)?;
    psi.raw_set("memory", psi_table(&h.psi_memory)?)?;
    psi.raw_set("io", psi_table(&h.psi_io)?)?;
    r.raw_set("psi", frozen(psi)?)?;

    r.raw_set(
        "disk",
        fields! {
            "read_bps": h.disk_read_bytes_per_s, "write_bps": h.disk_write_bytes_per_s,
        },
    )?;
    r.raw_set(
        "net",
        fields! { "rx_bps": h.net_rx_bytes_per_s, "tx_bps": h.net_tx_bytes_per_s },
    )?;
    r.raw_set(
        "tasks",
        fields! {
            "running": h.procs_running, "blocked": h.procs_blocked, "total": h.procs_total,
            "forks_per_s": h.forks_per_s, "ctxsw_per_s": h.ctxsw_per_s,
        },
    )?;

    let ooms = lua.create_table_with_capacity(sample.oom_kills.len(), 0)?;
    for (i, o) in sample.oom_kills.iter().enumerate() {
        let t = lua.create_table_with_capacity(0, 4)?;
        t.raw_set("time", o.ts_ms as f64 / 1000.0)?;
        t.raw_set("pid", o.pid)?;
        t.raw_set("name", o.name.as_str())?;
        t.raw_set("rss", o.rss_bytes)?;
        ooms.raw_set(i + 1, frozen(t)?)?;
    }
    r.raw_set("oom_kills", frozen(ooms)?)?;

    let fss = lua.create_table_with_capacity(sample.filesystems.len(), 0)?;
    for (i, f) in sample.filesystems.iter().enumerate() {
        let t = lua.create_table_with_capacity(0, 6)?;
        let used = f.total_bytes.saturating_sub(f.available_bytes);
        t.raw_set("mount", f.mount_point.as_str())?;
        t.raw_set("type", f.fs_type.as_str())?;
        t.raw_set("total", f.total_bytes)?;
        t.raw_set("available", f.available_bytes)?;
        t.raw_set("used", used)?;
        t.raw_set("used_pct", pct(used, f.total_bytes))?;
        fss.raw_set(i + 1, frozen(t)?)?;
    }
    r.raw_set("filesystems", frozen(fss)?)?;
    r.raw_set("nprocs", sample.processes.len())?;

    for pair in methods.pairs::<Value, Value>() {
        let (k, v) = pair?;
        r.raw_set(k, v)?;
    }
    r.set_metatable(Some(lazy_meta))?;
    frozen(r)
}

/// Forgets the current sample (its view becomes garbage).
pub(crate) fn end_sample(lua: &Lua) {
    if let Some(mut ctx) = lua.app_data_mut::<ViewCtx>() {
        ctx.sample = None;
        ctx.cache = None;
    }
}
