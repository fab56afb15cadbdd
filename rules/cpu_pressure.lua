-- cpu_pressure: tasks wait for a CPU (PSI cpu "some"), the direct sign of a CPU-starved host.
--
-- CPU % alone cannot tell a busy host from a starved one, and load1 climbs too slowly for a
-- storm of short-lived processes. PSI says how much of the last 10 s some runnable task had to
-- wait. The summary names the culprit: the biggest process, or the group of processes (by
-- parent, then by program) when a group outweighs every single process, exits included, so a
-- forking storm names its forker and its program.
-- Tune it in the config, not here: [rules.cpu_pressure] some = 30, hold = "30s".

-- The culprit as text: the heaviest of the top process and the top parent and name groups.
local function culprit(s)
  local p = s:top(1, "cpu")[1]
  local best = p and p.cpu or 0
  local text = p and string.format("%s (pid %d, %.0f%% CPU)", p.name, p.pid, p.cpu) or "nothing"
  for _, how in ipairs({ "parent", "name" }) do
    local g = s:top_groups(1, "cpu", how)[1]
    if g and g.processes > 1 and g.exited > 0 and g.value > best then
      local who = how == "parent" and ("children of " .. g.label) or ("all " .. g.label)
      return string.format("%s: %d processes (%d exited), %.0f%% CPU", who, g.processes,
        g.exited, g.value)
    end
  end
  return text
end

rule {
  name = "cpu_pressure",
  description = "CPU PSI some >= {some}% for {hold}",
  params = {
    some = 50, -- PSI cpu some avg10, %: the share of the last 10 s some task waited for a CPU
    capture = "5m", -- how long to record in detail once it fires
  },
  severity = "warning",
  hold = "15s",
  clear_after = "1m",
  summary = "CPU pressure: tasks waited for a CPU {some}% of the last 10 s; busiest: {top}",
  when = function(s)
    local psi = s.psi.cpu
    if psi == nil or psi.some_avg10 < params.some then
      return false
    end
    return true, { some = math.floor(psi.some_avg10 + 0.5), top = culprit(s) }
  end,
  on_fire = function(s, ctx)
    incident {}
    capture { duration = params.capture, interval = "1s" }
  end,
}
