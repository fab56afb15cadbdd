-- oom_kill: the kernel killed a process for lack of memory since the last sample.

rule {
  name = "oom_kill",
  description = "the kernel's OOM killer struck (kills of processes matching ignore are left out)",
  params = {
    ignore = {}, -- process names whose OOM kills do not fire, e.g. { "chrome" }
  },
  severity = "critical",
  clear_after = "5m",
  summary = "the kernel killed {name} (pid {pid}, {rss_mib} MiB) for lack of memory",
  when = function(s)
    local first, count = nil, 0
    for _, k in ipairs(s.oom_kills) do
      local skip = false
      for _, name in ipairs(params.ignore) do
        if k.name == name then
          skip = true
        end
      end
      if not skip then
        first = first or k
        count = count + 1
      end
    end
    if first == nil then
      return false
    end
    return true, { name = first.name, pid = first.pid, rss_mib = first.rss // 1048576, count = count }
  end,
}
