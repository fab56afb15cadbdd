-- io_stall: every task is waiting on I/O (PSI io "full"), or, without PSI, high iowait with
-- at least one blocked task per CPU.

rule {
  name = "io_stall",
  description = "I/O PSI full >= {full_pct}% (or iowait >= {iowait_pct}% with blocked tasks) for {hold}",
  params = {
    full_pct = 20, -- PSI io full_avg10, %
    iowait_pct = 30, -- without PSI: CPU iowait, % (with at least one blocked task per CPU)
    capture = "5m", -- how long to record in detail once it fires
  },
  severity = "warning",
  hold = "1m",
  clear_after = "2m",
  summary = "I/O stall: {what}; busiest: {top}",
  when = function(s)
    local psi = s.psi.io
    local what
    if psi ~= nil then
      local full = psi.full_avg10 or 0
      if full < params.full_pct then
        return false
      end
      what = string.format("all tasks stalled on I/O %.0f%% of the last 10 s", full)
    else
      if s.cpu.iowait < params.iowait_pct or s.tasks.blocked < s.cpus then
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
    capture { duration = params.capture, interval = "1s" }
  end,
}
