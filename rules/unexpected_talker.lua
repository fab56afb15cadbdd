-- unexpected_talker: a process moves many network bytes, or (when connections are recorded,
-- i.e. during a capture) talks to an address outside the allow-list.
--
-- The seed's tcpdump -> lsof -> ps, as a rule: the incident names the process.

local function allowed(addr, prefixes)
  for _, prefix in ipairs(prefixes) do
    if addr:sub(1, #prefix) == prefix then
      return true
    end
  end
  return false
end

local function proc_name(s, pid)
  for _, p in ipairs(s.procs) do
    if p.pid == pid then
      return p.name
    end
  end
  return "?"
end

rule {
  name = "unexpected_talker",
  description = "a process moves >= {mb_per_s} MB/s over TCP, or connects outside the allow-list",
  params = {
    mb_per_s = 5, -- TCP tx + rx of one process, MB/s (10^6 bytes)
    -- Remote address prefixes that are fine to talk to: set your network's in the config.
    allow = {
      "127.", "::1", "::ffff:127.", "10.", "192.168.", "169.254.", "fe80:", "fd",
      "172.16.", "172.17.", "172.18.", "172.19.", "172.20.", "172.21.", "172.22.", "172.23.",
      "172.24.", "172.25.", "172.26.", "172.27.", "172.28.", "172.29.", "172.30.", "172.31.",
    },
    capture = "5m", -- how long to record in detail (with connections) once it fires
  },
  severity = "warning",
  hold = "30s",
  clear_after = "1m",
  summary = "unexpected talker: {name} (pid {pid}) {reason}",
  when = function(s)
    local p = s:top(1, "net")[1]
    if p ~= nil then
      local bps = (p.net_tx_bps or 0) + (p.net_rx_bps or 0)
      if bps >= params.mb_per_s * 1e6 then
        local reason = string.format("moves %.1f MB/s", bps / 1e6)
        return true, { pid = p.pid, name = p.name, user = p.user, bps = bps, reason = reason }
      end
    end
    for _, c in ipairs(s.connections) do
      if c.remote_addr ~= "" and c.state == "ESTAB" and not allowed(c.remote_addr, params.allow) then
        local remote = c.remote_addr .. ":" .. c.remote_port
        local name = c.pid and proc_name(s, c.pid) or "?"
        return true, { pid = c.pid or -1, name = name, remote = remote, reason = "talks to " .. remote }
      end
    end
    return false
  end,
  on_fire = function(s, ctx)
    incident {}
    capture { duration = params.capture, interval = "1s" }
  end,
}
