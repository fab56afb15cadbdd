-- disk_filling / disk_full: a real file system is nearly full.

local IGNORE = { tmpfs = true, devtmpfs = true, squashfs = true, overlay = true, iso9660 = true, ramfs = true }

local function fullest(s)
  local worst
  for _, f in ipairs(s.filesystems) do
    if not IGNORE[f.type] and f.total > 0 and (worst == nil or f.used_pct > worst.used_pct) then
      worst = f
    end
  end
  return worst
end

local function over(s, pct)
  local f = fullest(s)
  if f == nil or f.used_pct < pct then
    return false
  end
  return true, { mount = f.mount, used_pct = f.used_pct, avail_gib = f.available / 2 ^ 30 }
end

rule {
  name = "disk_filling",
  description = "a file system is >= 90% full for 5 minutes",
  severity = "warning",
  hold = "5m",
  clear_after = "10m",
  summary = "{mount} is {used_pct}% full ({avail_gib} GiB left)",
  when = function(s)
    return over(s, 90)
  end,
}

rule {
  name = "disk_full",
  description = "a file system is >= 98% full for a minute",
  severity = "critical",
  hold = "1m",
  clear_after = "10m",
  summary = "{mount} is {used_pct}% full ({avail_gib} GiB left)",
  when = function(s)
    return over(s, 98)
  end,
}
