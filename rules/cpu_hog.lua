-- cpu_hog: one process holds (nearly) a whole CPU for a while.
--
-- The scheduler demotes a CPU hog, so load may look calm while one process burns a core; this
-- rule names the culprit, opens an incident and records in detail for five minutes.
-- Limitation: the condition is "some process is at >= threshold", so two processes taking
-- turns also satisfy the hold; the incident names the one on top when the rule fires.
-- Tune it in the config, not here: [rules.cpu_hog] threshold = 70, hold = "2m".

rule {
  name = "cpu_hog",
  description = "a process holds >= {threshold}% of one CPU for {hold}",
  params = {
    threshold = 90, -- percent of one CPU (top's convention: one busy core = 100)
    capture = "5m", -- how long to record in detail once it fires
  },
  severity = "warning",
  hold = "20s",
  clear_after = "10s",
  summary = "CPU hog: {name} (pid {pid}, user {user}) holds {cpu}% of a CPU",
  when = function(s)
    local p = s:top(1, "cpu")[1]
    if p == nil or p.cpu < params.threshold then
      return false
    end
    return true, { pid = p.pid, name = p.name, user = p.user, cpu = p.cpu, cmdline = p.cmdline }
  end,
  on_fire = function(s, ctx)
    incident {} -- title: the summary above, filled with the culprit
    capture { duration = params.capture, interval = "1s" }
  end,
}
