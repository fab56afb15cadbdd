//! Secrets out of command lines: the one redaction every path uses, before text is stored
//! (the collector, once per process identity; the store, once per identity it writes) and
//! wherever text leaves the store (query rows, alerts, the report, exporters).
//!
//! A [`Redactor`] is the built-in patterns plus the user's `[privacy] redact` regexes. Each
//! secret is replaced by [`MASK`], keeping what names it, so the text says that something was
//! taken out: `--password=***`, `Authorization: Bearer ***`, `https://bob:***@host/`.
//! Redaction is idempotent: redacting redacted text changes nothing.
//!
//! Other layers call [`redact`], which uses the redactor the program installed at start
//! ([`install`], from the config) or the built-in patterns alone.

use std::borrow::Cow;
use std::sync::{Arc, LazyLock, RwLock};

use regex::Regex;

/// What a secret is replaced with.
pub const MASK: &str = "***";

/// The characters a secret value may not contain: whitespace ends an argument, and quotes or
/// angle brackets end it in markup (the alert's HTML part).
const VALUE: &str = r#"[^\s"'<>]+"#;

/// One pattern: the text of its capture groups (or the whole match, for a pattern without
/// groups) is the secret. `gate`: the pattern applies only to text this also matches.
struct Rule {
    gate: Option<Regex>,
    re: Regex,
}

/// The built-in patterns and the user's, compiled.
pub struct Redactor {
    rules: Vec<Rule>,
}

/// A user pattern that does not compile: its index in `[privacy] redact` and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pattern {index} ({pattern:?}) is not a valid regex: {message}")]
pub struct BadPattern {
    pub index: usize,
    pub pattern: String,
    pub message: String,
}

fn builtin_rules() -> Vec<Rule> {
    let re = |s: &str| Regex::new(s).expect("built-in redaction pattern");
    // A pattern that applies to every text; `{VALUE}` stands for what a secret looks like.
    let rule = |s: &str| Rule {
        gate: None,
        re: re(&s.replace("{VALUE}", VALUE)),
    };
    let names = r"password|passwd|pass|token|secret|api[-_]?key|access[-_]?key|private[-_]?token|auth[-_]?token|access[-_]?token|client[-_]?secret";
    vec![
        // mysql -uroot -pS3cret: `-p` glued to the password, after a mysql-like program.
        Rule {
            gate: Some(re(r"(?:^|[\s/])(?:mysql[\w-]*|mariadb[\w-]*)(?:\s|$)")),
            re: re(&format!(r"(?:^|\s)-p({VALUE})")),
        },
        // sshpass -p secret ssh host
        rule(r"(?:^|[\s/])sshpass\s+(?:-[a-oq-zA-Z]\S*\s+)*-p\s*({VALUE})"),
        // --password=x, --password x, --db-password x, --token x, --secret=x, -pass x
        rule(&format!(
            r"(?i)(?:^|\s)--?(?:[\w-]*[-_])?(?:{names})(?:=({{VALUE}})|\s+([^\s\-\x22'<>][^\s\x22'<>]*))"
        )),
        // Authorization: Bearer x / Authorization: Basic x / Authorization: x, and the
        // other headers that carry a credential.
        rule(r"(?i)\b(?:proxy-)?authorization:\s*(?:[a-z][\w-]*\s+)?({VALUE})"),
        rule(r"(?i)\b(?:x-api-key|api-key|x-auth-token|private-token|cookie):\s*({VALUE})"),
        // A bearer token anywhere.
        rule(r"(?i)\bbearer\s+([A-Za-z0-9._~+/=-]+)"),
        // user:password@ in a URL.
        rule(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s/:@]*:([^\s/@]+)@"),
        // AWS_SECRET_KEY=x, GITHUB_TOKEN=x, db_password=x, token=x (arguments, query strings).
        rule(
            r#"(?i)\b(?:[A-Za-z0-9_]*_(?:key|token|secret|password|passwd|pass)|password|passwd|token|secret)=([^\s&"'<>]+)"#,
        ),
    ]
}

impl Redactor {
    /// The built-in patterns and then `patterns` (the user's, from `[privacy] redact`).
    pub fn new(patterns: &[String]) -> Result<Redactor, BadPattern> {
        let mut rules = builtin_rules();
        for (index, pattern) in patterns.iter().enumerate() {
            let re = Regex::new(pattern).map_err(|e| BadPattern {
                index,
                pattern: pattern.clone(),
                // The regex crate's message spans lines; its last line says what is wrong.
                message: e
                    .to_string()
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("invalid")
                    .trim()
                    .trim_start_matches("error: ")
                    .to_string(),
            })?;
            rules.push(Rule { gate: None, re });
        }
        Ok(Redactor { rules })
    }

    /// The built-in patterns only.
    pub fn builtin() -> &'static Redactor {
        static BUILTIN: LazyLock<Redactor> = LazyLock::new(|| Redactor {
            rules: builtin_rules(),
        });
        &BUILTIN
    }

    /// `text` with every secret replaced by [`MASK`]; borrowed when nothing was found.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for rule in &self.rules {
            if rule.gate.as_ref().is_some_and(|g| !g.is_match(&out)) {
                continue;
            }
            if let Some(replaced) = apply(&rule.re, &out) {
                out = Cow::Owned(replaced);
            }
        }
        out
    }
}

/// `text` with the secret parts of every match of `re` masked, or `None` if none matched.
fn apply(re: &Regex, text: &str) -> Option<String> {
    let mut spans: Vec<(usize, usize)> = Vec::new();
    for caps in re.captures_iter(text) {
        let groups: Vec<_> = if caps.len() > 1 {
            caps.iter().skip(1).flatten().collect()
        } else {
            caps.get(0).into_iter().collect()
        };
        for m in groups {
            let overlaps = spans.last().is_some_and(|&(_, end)| m.start() < end);
            if !overlaps && m.as_str() != MASK {
                spans.push((m.start(), m.end()));
            }
        }
    }
    if spans.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (start, end) in spans {
        out.push_str(&text[at..start]);
        out.push_str(MASK);
        at = end;
    }
    out.push_str(&text[at..]);
    Some(out)
}

static INSTALLED: RwLock<Option<Arc<Redactor>>> = RwLock::new(None);

/// Makes `redactor` the one [`redact`] uses from now on (at start, and at a config reload).
pub fn install(redactor: Redactor) {
    let mut slot = INSTALLED.write().unwrap_or_else(|e| e.into_inner());
    *slot = Some(Arc::new(redactor));
}

/// `text` with its secrets masked by the installed redactor (the built-in patterns when none
/// was installed). The one function every layer calls on text that names a process.
pub fn redact(text: &str) -> Cow<'_, str> {
    let installed = INSTALLED.read().unwrap_or_else(|e| e.into_inner()).clone();
    match installed {
        Some(r) => r.redact(text),
        None => Redactor::builtin().redact(text),
    }
}

/// [`redact`] for an owned string: no copy when nothing is secret.
pub fn redact_owned(text: String) -> String {
    match redact(&text) {
        Cow::Borrowed(_) => text,
        Cow::Owned(s) => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> String {
        Redactor::builtin().redact(s).into_owned()
    }

    /// Each command line comes out of the built-in redactor as given.
    fn redacts(cases: &[(&str, &str)]) {
        for (line, want) in cases {
            assert_eq!(r(line), *want, "{line}");
        }
    }

    #[test]
    fn mysql_password_glued_to_p() {
        redacts(&[
            (
                "mysql -uroot -pS3cretPass --host=db",
                "mysql -uroot -p*** --host=db",
            ),
            (
                "/usr/bin/mysqldump -pX1 -P3306 shop",
                "/usr/bin/mysqldump -p*** -P3306 shop",
            ),
            // -p after other programs is not a password (ssh -p port, mkdir -p).
            ("mkdir -pv /tmp/x", "mkdir -pv /tmp/x"),
            ("sshpass -p pw1 ssh -p 22 h", "sshpass -p *** ssh -p 22 h"),
            // mysql -p alone prompts: nothing to hide.
            ("mysql -p -uroot", "mysql -p -uroot"),
        ]);
    }

    #[test]
    fn password_token_secret_options() {
        redacts(&[
            ("app --password=hunter2 -v", "app --password=*** -v"),
            ("app --password hunter2 -v", "app --password *** -v"),
            (
                "app --db-password=x1 --token t0k",
                "app --db-password=*** --token ***",
            ),
            ("vault --secret=abc", "vault --secret=***"),
            ("openssl enc -pass pass:xyz", "openssl enc -pass ***"),
            // A flag with no value keeps the next option.
            ("mysql --password --host=db", "mysql --password --host=db"),
            // A file holding the password is not the password.
            (
                "app --password-file=/etc/app/pw",
                "app --password-file=/etc/app/pw",
            ),
        ]);
    }

    #[test]
    fn headers_and_bearer_tokens() {
        redacts(&[
            (
                "curl -H Authorization: Bearer abc.def https://x/",
                "curl -H Authorization: Bearer *** https://x/",
            ),
            (
                "curl -H Authorization: Basic dXNlcjpwdw== x",
                "curl -H Authorization: Basic *** x",
            ),
            ("curl -H X-Api-Key: k123 x", "curl -H X-Api-Key: *** x"),
            ("tool bearer abc.def", "tool bearer ***"),
        ]);
    }

    #[test]
    fn urls_and_environment_style_arguments() {
        redacts(&[
            (
                "git clone https://bob:pa55@git.example.org/r.git",
                "git clone https://bob:***@git.example.org/r.git",
            ),
            (
                "env AWS_SECRET_ACCESS_KEY=AKxyz GITHUB_TOKEN=ghp_1 APP_SECRET=s PATH=/bin",
                "env AWS_SECRET_ACCESS_KEY=*** GITHUB_TOKEN=*** APP_SECRET=*** PATH=/bin",
            ),
            (
                "wget https://x/api?token=abc&page=2",
                "wget https://x/api?token=***&page=2",
            ),
        ]);
    }

    #[test]
    fn harmless_lines_are_borrowed_and_redaction_is_idempotent() {
        let plain = "postgres: writer process --port 5432 https://example.org/x";
        assert!(matches!(
            Redactor::builtin().redact(plain),
            Cow::Borrowed(_)
        ));
        for s in [
            "mysql -uroot -pS3cretPass --host=db",
            "curl -H Authorization: Bearer abc.def",
            "x --token=a https://u:p@h/ K_TOKEN=z",
        ] {
            let once = r(s);
            assert_eq!(r(&once), once, "{s}");
            assert!(matches!(
                Redactor::builtin().redact(&once),
                Cow::Borrowed(_)
            ));
        }
    }

    #[test]
    fn user_patterns_mask_their_groups_or_whole_match() {
        let red = Redactor::new(&[
            r"--license\s+(\S+)".to_string(),
            r"sk_live_[0-9a-z]+".to_string(),
        ])
        .unwrap();
        assert_eq!(
            red.redact("srv --license L-123 key sk_live_9abc end")
                .as_ref(),
            "srv --license *** key *** end"
        );
        let e = Redactor::new(&["ok".into(), "(unclosed".into()])
            .err()
            .unwrap();
        assert_eq!(e.index, 1);
        assert!(e.to_string().contains("(unclosed"), "{e}");
        assert!(!e.message.contains('\n'), "{e}");
    }
}
