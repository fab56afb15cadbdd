-- load_spike: the run queue is far longer than the machine has CPUs.
--
-- Load counts runnable and uninterruptible tasks, so it shows a server in distress even when
-- CPU % looks normal. Compared per CPU so one rule fits a laptop and a 64-core box.

rule {
  name = "load_spike",
  description = "load1 per CPU >= {per_cpu} for {hold}",
  params = {
    per_cpu = 2.0, -- load1 divided by the number of CPUs
    capture = "10m", -- how long to record in detail once it fires
  },
  severity = "warning",
  hold = "1m",
  clear_after = "2m",
  summary = "load {load1} on {cpus} CPUs ({per_cpu} per CPU); busiest: {top}",
  when = function(s)
    local per_cpu = s.load1 / math.max(s.cpus, 1)
    if per_cpu < params.per_cpu then
      return false
    end
    local p = s:top(1, "cpu")[1]
    local top = p and string.format("%s (pid %d, %.0f%% CPU)", p.name, p.pid, p.cpu) or "nothing"
    return true, { load1 = s.load1, cpus = s.cpus, per_cpu = per_cpu, top = top }
  end,
  on_fire = function(s, ctx)
    incident {}
    capture { duration = params.capture, interval = "1s" }
  end,
}
