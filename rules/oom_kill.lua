-- oom_kill: the kernel killed a process for lack of memory since the last sample.

rule {
  name = "oom_kill",
  description = "the kernel's OOM killer struck",
  severity = "critical",
  clear_after = "5m",
  summary = "the kernel killed {name} (pid {pid}, {rss_mib} MiB) for lack of memory",
  when = function(s)
    local k = s.oom_kills[1]
    if k == nil then
      return false
    end
    return true, { name = k.name, pid = k.pid, rss_mib = k.rss // 1048576, count = #s.oom_kills }
  end,
}
