-- prune_low_load: the seed's retention, hourly: drop samples older than a day whose load
-- stayed under 1.4 (its `DELETE FROM savetop WHERE Load<1.4`), keeping incident windows.

rule {
  name = "prune_low_load",
  description = "hourly: prune calm samples older than a day",
  severity = "info",
  every = "1h",
  run = function(s, ctx)
    prune { policy = "low_load", older_than = "1d", load_below = 1.4 }
  end,
}
