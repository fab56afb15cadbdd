-- load_spike: the run queue is far longer than the machine has CPUs.
--
-- Load counts runnable and uninterruptible tasks, so it shows a server in distress even when
-- CPU % looks normal. Compared per CPU so one rule fits a laptop and a 64-core box.

local PER_CPU = 2.0 -- load1 per CPU

rule {
  name = "load_spike",
  description = "load1 per CPU >= 2 for a minute",
  severity = "warning",
  hold = "1m",
  clear_after = "2m",
  summary = "load {load1} on {cpus} CPUs ({per_cpu} per CPU); busiest: {top}",
  when = function(s)
    local per_cpu = s.load1 / math.max(s.cpus, 1)
    if per_cpu < PER_CPU then
      return false
    end
    local p = s:top(1, "cpu")[1]
    local top = p and string.format("%s (pid %d, %.0f%% CPU)", p.name, p.pid, p.cpu) or "nothing"
    return true, { load1 = s.load1, cpus = s.cpus, per_cpu = per_cpu, top = top }
  end,
  on_fire = function(s, ctx)
    incident {}
    capture { duration = "10m", interval = "1s" }
  end,
}
