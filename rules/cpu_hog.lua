-- cpu_hog: one process holds (nearly) a whole CPU for a while.
--
-- The scheduler demotes a CPU hog, so load may look calm while one process burns a core; this
-- rule names the culprit, opens an incident and records in detail for five minutes.
-- Limitation: the condition is "some process is at >= 90 %", so two processes taking turns
-- also satisfy the hold; the incident names the one on top when the rule fires.

local THRESHOLD = 90 -- percent of one CPU (top's convention: one busy core = 100)

rule {
  name = "cpu_hog",
  description = "a process holds >= 90% of one CPU for 20 s",
  severity = "warning",
  hold = "20s",
  clear_after = "10s",
  summary = "CPU hog: {name} (pid {pid}, user {user}) holds {cpu}% of a CPU",
  when = function(s)
    local p = s:top(1, "cpu")[1]
    if p == nil or p.cpu < THRESHOLD then
      return false
    end
    return true, { pid = p.pid, name = p.name, user = p.user, cpu = p.cpu, cmdline = p.cmdline }
  end,
  on_fire = function(s, ctx)
    incident {} -- title: the summary above, filled with the culprit
    capture { duration = "5m", interval = "1s" }
  end,
}
