-- disk_filling / disk_full: a real file system is nearly full.

-- File system types that are never "real" disks.
local IGNORE = { tmpfs = true, devtmpfs = true, squashfs = true, overlay = true, iso9660 = true, ramfs = true }

local function ignored(f, extra)
  if IGNORE[f.type] then
    return true
  end
  for _, mount in ipairs(extra) do
    if f.mount == mount then
      return true
    end
  end
  return false
end

local function fullest(s)
  local worst
  for _, f in ipairs(s.filesystems) do
    if not ignored(f, params.ignore_mounts) and f.total > 0 and (worst == nil or f.used_pct > worst.used_pct) then
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
  description = "a file system is >= {used_pct}% full for {hold}",
  params = {
    used_pct = 90, -- % of the file system used
    ignore_mounts = {}, -- mount points never to look at, e.g. { "/boot/efi" }
  },
  severity = "warning",
  hold = "5m",
  clear_after = "10m",
  summary = "{mount} is {used_pct}% full ({avail_gib} GiB left)",
  when = function(s)
    return over(s, params.used_pct)
  end,
}

rule {
  name = "disk_full",
  description = "a file system is >= {used_pct}% full for {hold}",
  params = {
    used_pct = 98, -- % of the file system used
    ignore_mounts = {}, -- mount points never to look at, e.g. { "/boot/efi" }
  },
  severity = "critical",
  hold = "1m",
  clear_after = "10m",
  summary = "{mount} is {used_pct}% full ({avail_gib} GiB left)",
  when = function(s)
    return over(s, params.used_pct)
  end,
}
