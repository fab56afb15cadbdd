//! Running a rule's command, off the sampling thread, never through a shell.

use std::time::Duration;

use super::Actions;

impl Actions {
    pub(super) fn exec(&self, rule: &str, argv: &[String], timeout: Duration) {
        if !self.settings.allow_exec {
            tracing::warn!("rule {rule}: exec refused: [rules] allow_exec is false");
            return;
        }
        let Some((program, args)) = argv.split_first() else {
            return;
        };
        let (rule, program, args) = (rule.to_string(), program.clone(), args.to_vec());
        // Off the sampling thread; never through a shell.
        let spawned = std::thread::Builder::new()
            .name("rule-exec".into())
            .stack_size(256 << 10)
            .spawn(move || {
                let mut child = match std::process::Command::new(&program)
                    .args(&args)
                    .stdin(std::process::Stdio::null())
                    .spawn()
                {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::error!("rule {rule}: exec {program}: {e}");
                        return;
                    }
                };
                let start = std::time::Instant::now();
                loop {
                    match child.try_wait() {
                        Ok(Some(st)) => {
                            tracing::info!("rule {rule}: exec {program}: {st}");
                            return;
                        }
                        Ok(None) if start.elapsed() > timeout => {
                            if let Err(e) = child.kill() {
                                tracing::warn!("rule {rule}: exec {program}: cannot kill: {e}");
                            }
                            if let Err(e) = child.wait() {
                                tracing::warn!("rule {rule}: exec {program}: {e}");
                            }
                            tracing::warn!(
                                "rule {rule}: exec {program}: killed after {}s",
                                timeout.as_secs()
                            );
                            return;
                        }
                        Ok(None) => std::thread::sleep(Duration::from_millis(100)),
                        Err(e) => {
                            tracing::error!("rule {rule}: exec {program}: {e}");
                            return;
                        }
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!("exec: cannot start a thread: {e}");
        }
    }
}
