-- memory_pressure: tasks stall waiting for memory (PSI), the early sign of thrashing.
--
-- PSI "some" is the share of time at least one task waited for memory; "full" the share of
-- time all non-idle tasks did. Without PSI (old kernels, macOS) it falls back to available
-- memory below 5 % (available_min_pct).

rule {
  name = "memory_pressure",
  description = "memory PSI some >= {some_pct}% or full >= {full_pct}% (without PSI: available < {available_min_pct}%) for {hold}",
  params = {
    some_pct = 10, -- PSI memory some_avg10, %
    full_pct = 5, -- PSI memory full_avg10, %
    available_min_pct = 5, -- without PSI: available memory under this share, %
    capture = "5m", -- how long to record in detail once it fires
  },
  severity = "warning",
  hold = "30s",
  clear_after = "2m",
  summary = "memory pressure: {what}; biggest: {top}",
  when = function(s)
    local psi = s.psi.memory
    local what
    if psi ~= nil then
      local full = psi.full_avg10 or 0
      if psi.some_avg10 < params.some_pct and full < params.full_pct then
        return false
      end
      what = string.format("tasks stalled on memory %.0f%% of the last 10 s (all tasks %.0f%%)", psi.some_avg10, full)
    else
      if s.mem.total == 0 or s.mem.available * 100 / s.mem.total >= params.available_min_pct then
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
    capture { duration = params.capture, interval = "1s" }
  end,
}
