//! Markup escaping, one implementation for the report's HTML and the alerts' markup.
//!
//! Two names because the two outputs differ by one character today and tests compare the
//! rendered text: the report also escapes `'` (its attributes may be single-quoted), the
//! alert bodies leave it as typed.

/// Escapes `&`, `<`, `>`, `"` and `'` for HTML content and quoted attributes (the report).
pub fn escape_html(text: &str) -> String {
    escape(text, true)
}

/// Escapes `&`, `<`, `>` and `"` for HTML text and for the desktop body, whose markup
/// subset would otherwise swallow text such as `<defunct>` (the alerts).
pub fn escape_markup(text: &str) -> String {
    escape(text, false)
}

fn escape(text: &str, apostrophe: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' if apostrophe => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_is_escaped() {
        assert_eq!(escape_markup("a<b>&\"c\""), "a&lt;b&gt;&amp;&quot;c&quot;");
        assert_eq!(escape_markup("it's"), "it's");
        assert_eq!(escape_markup("plain ü"), "plain ü");
    }

    #[test]
    fn html_also_escapes_the_apostrophe() {
        assert_eq!(
            escape_html("a<b>&\"c\" 'd'"),
            "a&lt;b&gt;&amp;&quot;c&quot; &#39;d&#39;"
        );
    }
}
