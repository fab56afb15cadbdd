//! `hogtrap alert test`: send a test message straight through the configured channels and say
//! what happened on each.

use std::io::Write;

use anyhow::{bail, Context};
use clap::Subcommand;

use super::Ctx;
use crate::alert::outbox::enabled_channels;
use crate::store::outbox::Channel;

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Send a test message now through the configured channels (all enabled ones, or those
    /// named) and say what happened on each. Goes straight to the servers, not through the
    /// outbox.
    Test {
        /// Send by email (even if [email] enabled = false).
        #[arg(long)]
        email: bool,
        /// Send a desktop notification (even if [desktop] enabled = false).
        #[arg(long)]
        desktop: bool,
    },
}

pub fn run(ctx: &Ctx, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Test { email, desktop } => test(ctx, email, desktop),
    }
}

fn test(ctx: &Ctx, email: bool, desktop: bool) -> anyhow::Result<()> {
    let cfg = ctx.config()?;
    let where_ = ctx
        .config_path()
        .map_or("the embedded default config".to_string(), |p| {
            p.display().to_string()
        });
    let channels: Vec<Channel> = if email || desktop {
        Channel::MESSAGES
            .into_iter()
            .filter(|c| match c {
                Channel::Email => email,
                Channel::Desktop => desktop,
                Channel::Alertmanager => false,
            })
            .collect()
    } else {
        enabled_channels(cfg)
    };
    if channels.is_empty() {
        bail!(
            "no alert channel is enabled in {where_}: set [email] enabled = true or [desktop]              enabled = true, or name one with --email / --desktop"
        );
    }
    let host = crate::collect::host_name(&cfg.sampler);
    let message =
        crate::alert::compose::test_message(&host, jiff::Timestamp::now().as_millisecond());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let mut out = std::io::stdout().lock();
    let mut failed = 0;
    for channel in &channels {
        let name = channel.as_str();
        let enabled = match channel {
            Channel::Email => cfg.email.enabled,
            Channel::Desktop => cfg.desktop.enabled,
            Channel::Alertmanager => cfg.export.alertmanager.enabled(),
        };
        if !enabled {
            writeln!(
                out,
                "{name:8} note: [{name}] enabled = false, so alerts do not use this channel"
            )?;
        }
        let started = std::time::Instant::now();
        let result = match channel {
            Channel::Email => {
                if let Ok(warnings) = crate::alert::email_preflight(&cfg.email) {
                    for w in warnings {
                        writeln!(out, "{name:8} warning: {w}")?;
                    }
                }
                rt.block_on(crate::alert::send_email(&cfg.email, &message))
                    .map(|()| {
                        format!(
                            "delivered to {} via {}:{} (tls = {})",
                            cfg.email.to.join(", "),
                            cfg.email.server,
                            cfg.email.effective_port(),
                            cfg.email.tls.as_str()
                        )
                    })
            }
            Channel::Desktop => rt
                .block_on(crate::alert::send_desktop(&cfg.desktop, &message))
                .map(|()| "delivered: the notification server accepted it".to_string()),
            Channel::Alertmanager => {
                Ok("not tried: Alertmanager is told about incidents, not messages".to_string())
            }
        };
        let took = started.elapsed().as_secs_f64();
        match result {
            Ok(what) => writeln!(out, "{name:8} {what} ({took:.1}s)")?,
            Err(e) => {
                failed += 1;
                writeln!(out, "{name:8} FAILED: {e} ({took:.1}s)")?;
            }
        }
    }
    out.flush()?;
    if failed > 0 {
        bail!(
            "the test message failed on {failed} of {} channel(s)",
            channels.len()
        );
    }
    Ok(())
}
