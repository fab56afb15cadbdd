-- io_stall: every task is waiting on I/O (PSI io "full"), or, without PSI, high iowait with
-- at least one blocked task per CPU.

local FULL_PCT = 20
local IOWAIT_PCT = 30

rule {
  name = "io_stall",
  description = "I/O PSI full >= 20% (or iowait >= 30% with blocked tasks) for a minute",
  severity = "warning",
  hold = "1m",
  clear_after = "2m",
  summary = "I/O stall: {what}; busiest: {top}",
  when = function(s)
    local psi = s.psi.io
    local what
    if psi ~= nil then
      local full = psi.full_avg10 or 0
      if full < FULL_PCT then
        return false
      end
      what = string.format("all tasks stalled on I/O %.0f%% of the last 10 s", full)
    else
      if s.cpu.iowait < IOWAIT_PCT or s.tasks.blocked < s.cpus then
        return false
      end
      what = string.format("iowait %.0f%%, %d tasks blocked", s.cpu.iowait, s.tasks.blocked)
    end
    local p = s:top(1, "io")[1]
    local top = p and string.format("%s (pid %d, %.1f MB/s)", p.name, p.pid, (p.read_bps + p.write_bps) / 1e6) or "nothing"
    return true, { what = what, top = top }
  end,
  on_fire = function(s, ctx)
    incident {}
    capture { duration = "5m", interval = "1s" }
  end,
}
