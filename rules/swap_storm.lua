-- swap_storm: swap use climbs fast, the kernel is pushing memory out to disk.
--
-- Uses the history ring: growth of swap use over the last minute.

rule {
  name = "swap_storm",
  description = "swap use grew by >= {growth_mib} MiB within a minute, for {hold}",
  params = {
    growth_mib = 256, -- swap use growth over the last minute, MiB
    capture = "5m", -- how long to record in detail once it fires
  },
  severity = "critical",
  hold = "30s",
  clear_after = "2m",
  summary = "swap storm: swap use grew {grown_mib} MiB in a minute ({used_pct}% used); biggest: {top}",
  when = function(s)
    if s.swap.total == 0 then
      return false
    end
    local low = history.min("swap_used", "1m")
    if low == nil or s.swap.used - low < params.growth_mib * 1048576 then
      return false
    end
    local p = s:top(1, "mem")[1]
    local top = p and string.format("%s (pid %d)", p.name, p.pid) or "nothing"
    return true, { grown_mib = (s.swap.used - low) // 1048576, used_pct = s.swap.used_pct, top = top }
  end,
  on_fire = function(s, ctx)
    incident {}
    capture { duration = params.capture, interval = "1s" }
  end,
}
