//! Options of rule actions, through the real daemon and a real SMTP server: `email { to }`
//! reaches exactly the named recipient (not `[email] to`), and `resolve { note }` is kept
//! with the incident and shown by `hogtrap show` and `show --json`.

mod support;

use std::time::Duration;

use support::recorder::Daemon;
use support::{free_port, SmtpMode, SmtpServer};

/// Fires on the 2nd sample, clears on the 5th: a mail to the team at fire, a note at clear.
const RULE: &str = r#"
rule {
  name = "team_mail",
  summary = "team mail test",
  when = function(s)
    state.n = (state.n or 0) + 1
    return state.n >= 2 and state.n < 5
  end,
  on_fire = function(s, ctx)
    incident {}
    email { subject = "for the team", body = "see the incident", to = "team@example.test" }
  end,
  on_clear = function(s, ctx)
    resolve { note = "cleared by the test rule: nothing left to do" }
  end,
}
"#;

#[test]
fn email_to_reaches_exactly_that_recipient_and_the_resolve_note_is_shown() {
    let smtp = SmtpServer::start_on(free_port(), SmtpMode::Plain, None, None);
    let config = format!(
        "[sampler]\ninterval = \"1s\"\n\n\
         [email]\nenabled = true\nserver = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n\
         from = \"hogtrap <hogtrap@example.org>\"\nto = [\"ops@example.org\"]\n",
        smtp.port
    );
    let d = Daemon::start_with_rules(&config, &[("team.lua", RULE)]);
    let mails = smtp.wait_for_messages(1, Duration::from_secs(60));
    assert!(mails[0].contains("for the team"), "{}", mails[0]);
    let rcpts: Vec<String> = smtp
        .commands()
        .lines()
        .filter(|l| l.starts_with("RCPT"))
        .map(str::to_string)
        .collect();
    assert_eq!(rcpts.len(), 1, "{rcpts:?}");
    assert!(rcpts[0].starts_with("RCPT team@example.test "), "{rcpts:?}");
    assert!(
        !smtp.commands().contains("ops@example.org"),
        "{}",
        smtp.commands()
    );

    let id = d.wait_for("the incident resolved", Duration::from_secs(60), || {
        let rows = d.try_sql_json(
            "SELECT id FROM incident WHERE rule = 'team_mail' AND closed_ms IS NOT NULL",
        )?;
        rows.as_array()?.first().and_then(|r| r["id"].as_i64())
    });
    let note = "cleared by the test rule: nothing left to do";
    let shown = d.ok(&["show", &id.to_string()]);
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with("note") && l.ends_with(note)),
        "{shown}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&d.ok(&["show", &id.to_string(), "--json"])).unwrap();
    assert_eq!(json["resolve_note"], note, "{json:#}");
}
