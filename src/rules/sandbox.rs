//! The Lua sandbox: one `mlua::Lua` state per engine worker, holding every rule file.
//!
//! What it guarantees, and how:
//! - **Library subset.** Only `string` (without `dump`), `table`, `math`, `utf8`, `coroutine`,
//!   `os.time/clock/date/difftime` and the safe base functions are ever reachable from a rule.
//!   No `io`, `os.execute`/`getenv`/`remove`, `require`, `package`, `debug`, `dofile`,
//!   `loadfile`. `load` only accepts text chunks and defaults to the calling file's `_ENV`.
//!   `print` goes to the engine's log, never to stdout. `collectgarbage` only answers `"count"`.
//! - **Isolation.** Each rule file runs with its own `_ENV` holding *copies* of the library
//!   tables, so `string.upper = evil` changes only that file's copy. The real globals are never
//!   reachable (no `_G`, no `debug`, `load` pinned to the file's env). The string metatable is
//!   protected (`getmetatable("")` returns a marker string), so `("").x` lookups can't be
//!   redirected. Shared tables (the sample view) are read-only proxies, and `rawset` refuses
//!   them.
//! - **Instruction budget.** A raw count hook on the main thread, inherited by every coroutine
//!   Lua creates (`lua_newthread` copies the hook). Once the budget is spent the hook raises an
//!   error and switches itself to fire on *every* instruction of that thread, so a `pcall` that
//!   swallows the error is hit again on its next instruction: no escape through `pcall`,
//!   `xpcall` or coroutines. `__gc` metamethods (which run with hooks off) are refused.
//! - **Memory.** `Lua::set_memory_limit` on the whole state.
//! - What hooks cannot stop (a C function such as a pathological `string.find`) is the
//!   engine's wall-clock watchdog's job (see `engine.rs`).

use std::cell::Cell;
use std::ffi::c_int;

use mlua::{ffi, Function, Lua, LuaOptions, StdLib, Table};

/// Instructions between two hook checks while under budget.
const HOOK_STEP: c_int = 1000;

thread_local! {
    /// Instructions left for the current call on this (worker) thread.
    static BUDGET_LEFT: Cell<i64> = const { Cell::new(i64::MAX) };
    /// Set by the hook when the budget ran out during the current call.
    static TRIPPED: Cell<bool> = const { Cell::new(false) };
    /// The hook was switched to every-instruction mode and must be reset.
    static STEP_IS_ONE: Cell<bool> = const { Cell::new(false) };
}

unsafe extern "C-unwind" fn budget_hook(state: *mut ffi::lua_State, _ar: *mut ffi::lua_Debug) {
    let left = BUDGET_LEFT.with(|b| {
        let v = b.get().saturating_sub(HOOK_STEP as i64);
        b.set(v);
        v
    });
    if left <= 0 {
        TRIPPED.with(|t| t.set(true));
        STEP_IS_ONE.with(|t| t.set(true));
        // SAFETY: called by Lua as a hook on a live state; no Rust value with a destructor is
        // alive in this frame when lua_error unwinds (longjmps) out of it.
        unsafe {
            ffi::lua_sethook(state, Some(budget_hook), ffi::LUA_MASKCOUNT, 1);
            ffi::luaL_where(state, 0);
            ffi::lua_pushstring(state, c"instruction budget exceeded".as_ptr());
            ffi::lua_concat(state, 2);
            ffi::lua_error(state);
        }
    }
}

/// The private helpers the prelude returns.
pub(crate) struct Prelude {
    /// `freeze(real) -> proxy`: a read-only view of `real`.
    pub freeze: Function,
    /// `new_env(chunk_name) -> env`: a fresh `_ENV` for one rule file.
    pub new_env: Function,
}

/// Creates the sandboxed state. `api` holds the engine's functions (`rule`, actions,
/// `history`, view helpers) that every file's env receives copies of.
pub(crate) fn new_state(memory_limit: usize) -> mlua::Result<Lua> {
    let libs = StdLib::STRING
        | StdLib::TABLE
        | StdLib::MATH
        | StdLib::UTF8
        | StdLib::COROUTINE
        | StdLib::OS;
    let lua = Lua::new_with(libs, LuaOptions::new())?;
    lua.set_memory_limit(memory_limit)?;
    // SAFETY: lua_sethook on the main state with a hook that only touches thread-locals and
    // raises Lua errors; exec_raw runs it inside a protected call.
    unsafe {
        lua.exec_raw::<()>((), |state| {
            ffi::lua_sethook(state, Some(budget_hook), ffi::LUA_MASKCOUNT, HOOK_STEP);
        })?;
    }
    Ok(lua)
}

/// Runs the prelude in the real globals; `api` is the table of engine functions.
pub(crate) fn install_prelude(lua: &Lua, api: Table) -> mlua::Result<Prelude> {
    let t: Table = lua
        .load(PRELUDE)
        .set_name("=hogtrap-prelude")
        .set_mode(mlua::ChunkMode::Text)
        .call(api)?;
    Ok(Prelude {
        freeze: t.get("freeze")?,
        new_env: t.get("new_env")?,
    })
}

/// Gives the next call `budget` instructions.
pub(crate) fn arm_budget(lua: &Lua, budget: u64) {
    BUDGET_LEFT.with(|b| b.set(budget.min(i64::MAX as u64) as i64));
    TRIPPED.with(|t| t.set(false));
    if STEP_IS_ONE.with(|t| t.replace(false)) {
        // SAFETY: as in new_state.
        let _ = unsafe {
            lua.exec_raw::<()>((), |state| {
                ffi::lua_sethook(state, Some(budget_hook), ffi::LUA_MASKCOUNT, HOOK_STEP);
            })
        };
    }
}

/// Charges work done in Rust on behalf of a rule (sorting processes, scanning history) to the
/// instruction budget, so a loop of cheap-looking calls still runs out. The hook raises the
/// error at its next check.
pub(crate) fn charge(units: usize) {
    BUDGET_LEFT.with(|b| b.set(b.get().saturating_sub(units as i64)));
}

/// Whether the budget ran out since the last [`arm_budget`].
pub(crate) fn budget_tripped() -> bool {
    TRIPPED.with(|t| t.get())
}

/// Lifts the budget for engine-internal Lua (view building).
pub(crate) fn disarm_budget() {
    BUDGET_LEFT.with(|b| b.set(i64::MAX));
}

/// Runs with the real globals. Returns `{freeze=..., new_env=...}`.
const PRELUDE: &str = r##"
local api = ...
local G = _G
local setmetatable, getmetatable, rawget, rawset = setmetatable, getmetatable, rawget, rawset
local load, next, pairs, ipairs, type, error, tostring, select = load, next, pairs, ipairs, type, error, tostring, select
local collectgarbage = collectgarbage
local string, table, math, utf8, coroutine, os = string, table, math, utf8, coroutine, os

local READONLY = "hogtrap: read-only table"

-- The real string table is reachable only through ("").method lookups: make it dump-free
-- and hide the metatable.
string.dump = nil
getmetatable("").__metatable = "hogtrap: protected"

local function ro_newindex(_, k)
  error("attempt to modify a read-only table (field '" .. tostring(k) .. "')", 2)
end

local function freeze(real)
  return setmetatable({}, {
    __index = real,
    __newindex = ro_newindex,
    __len = function() return #real end,
    __pairs = function() return next, real, nil end,
    __metatable = READONLY,
  })
end

local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

local function safe_setmetatable(t, mt)
  if type(mt) == "table" and rawget(mt, "__gc") ~= nil then
    error("__gc metamethods are not allowed in rules", 2)
  end
  return setmetatable(t, mt)
end

local function safe_rawset(t, k, v)
  if getmetatable(t) == READONLY then
    error("attempt to modify a read-only table", 2)
  end
  return rawset(t, k, v)
end

-- After the budget hook raises, Lua runs the xpcall message handler with hooks off: a
-- handler that loops would escape the budget. Skip user handlers for budget errors.
local budget_tripped = api.budget_tripped
local xpcall_ = xpcall
local function safe_xpcall(f, handler, ...)
  return xpcall_(f, function(e)
    if budget_tripped() then return e end
    return handler(e)
  end, ...)
end

local function safe_collectgarbage(opt)
  if opt == nil or opt == "count" then return collectgarbage("count") end
  error('collectgarbage: only "count" is allowed in rules', 2)
end

-- Engine functions report errors as a second result; raise them at the caller's line.
local function raising(f)
  return function(...)
    local v, err = f(...)
    if err ~= nil then error(err, 2) end
    return v
  end
end

local exports = {}
for k, v in pairs(api.exports) do
  if type(v) == "function" then
    exports[k] = raising(v)
  elseif type(v) == "table" then
    local t = {}
    for k2, f in pairs(v) do t[k2] = raising(f) end
    exports[k] = t
  end
end

local base = { "assert", "error", "ipairs", "next", "pairs", "pcall", "rawequal", "rawget",
  "rawlen", "select", "tonumber", "tostring", "type", "getmetatable" }

local function new_env()
  local env = {}
  for _, n in ipairs(base) do env[n] = G[n] end
  env._VERSION = G._VERSION
  env.setmetatable = safe_setmetatable
  env.rawset = safe_rawset
  env.collectgarbage = safe_collectgarbage
  env.xpcall = safe_xpcall
  env.string = copy(string)
  env.table = copy(table)
  env.math = copy(math)
  env.utf8 = copy(utf8)
  env.coroutine = copy(coroutine)
  env.os = { time = os.time, clock = os.clock, date = os.date, difftime = os.difftime }
  env.load = function(chunk, name, _mode, e)
    if e == nil then e = env end
    return load(chunk, name, "t", e)
  end
  for k, v in pairs(exports) do
    env[k] = type(v) == "table" and copy(v) or v
  end
  env.print = function(...)
    local parts = {}
    for i = 1, select("#", ...) do parts[i] = tostring((select(i, ...))) end
    return env.log(table.concat(parts, "\t"))
  end
  env._G = env
  return env
end

api.view_methods.top = raising(api.view_methods.top)

-- The sample view's `s:find(name_or_pattern)`.
api.view_methods.find = function(self, pat)
  if type(pat) ~= "string" then error("find: expected a name or a Lua pattern", 2) end
  local out = {}
  local plain = not string.find(pat, "[%^%$%(%)%%%.%[%]%*%+%-%?]")
  for _, p in ipairs(self.procs) do
    if plain then
      if p.name == pat then out[#out + 1] = p end
    elseif string.find(p.name, pat) or string.find(p.cmdline, pat) then
      out[#out + 1] = p
    end
  end
  return out
end

return { freeze = freeze, new_env = new_env }
"##;
