-- prune_low_load: the seed's retention, hourly: drop samples older than a day whose load
-- stayed under 1.4 (its `DELETE FROM savetop WHERE Load<1.4`), keeping incident windows.
-- Tune it in the config: [rules.prune_low_load] older_than = "3d", load_below = 2.

rule {
  name = "prune_low_load",
  description = "hourly: prune samples older than {older_than} whose load stayed under {load_below}",
  params = {
    older_than = "1d", -- only samples older than this
    load_below = 1.4, -- whose load1 stayed under this
  },
  severity = "info",
  every = "1h",
  run = function(s, ctx)
    prune { policy = "low_load", older_than = params.older_than, load_below = params.load_below }
  end,
}
