-- memory_pressure: tasks stall waiting for memory (PSI), the early sign of thrashing.
--
-- PSI "some" is the share of time at least one task waited for memory; "full" the share of
-- time all non-idle tasks did. Without PSI (old kernels, macOS) it falls back to available
-- memory below 5 %.

local SOME_PCT = 10
local FULL_PCT = 5
local AVAILABLE_MIN = 0.05

rule {
  name = "memory_pressure",
  description = "memory PSI some >= 10% or full >= 5% for 30 s",
  severity = "warning",
  hold = "30s",
  clear_after = "2m",
  summary = "memory pressure: {what}; biggest: {top}",
  when = function(s)
    local psi = s.psi.memory
    local what
    if psi ~= nil then
      local full = psi.full_avg10 or 0
      if psi.some_avg10 < SOME_PCT and full < FULL_PCT then
        return false
      end
      what = string.format("tasks stalled on memory %.0f%% of the last 10 s (all tasks %.0f%%)", psi.some_avg10, full)
    else
      if s.mem.total == 0 or s.mem.available / s.mem.total >= AVAILABLE_MIN then
        return false
      end
      what = string.format("only %.1f%% of memory available", s.mem.available * 100 / s.mem.total)
    end
    local p = s:top(1, "mem")[1]
    local top = p and string.format("%s (pid %d, %d MiB)", p.name, p.pid, p.rss // 1048576) or "nothing"
    return true, { what = what, top = top, pid = p and p.pid }
  end,
  on_fire = function(s, ctx)
    incident {}
    capture { duration = "5m", interval = "1s" }
  end,
}
