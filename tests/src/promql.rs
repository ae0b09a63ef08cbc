//! PromQL and the Prometheus text format, as far as the dashboard checks
//! need them: the metric names an expression reads ([`metric_names`]) and
//! the series names of an exposition ([`exposition_names`]).

use std::collections::BTreeSet;

/// Keywords a list of label names follows: `by (le)`, `on (pod)`…
const LABEL_LIST_KEYWORDS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// Aggregations, keywords, operators and literals: words that are not
/// metric names.
const PROMQL_WORDS: &[&str] = &[
    // aggregations
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
    // keywords and operators (besides LABEL_LIST_KEYWORDS)
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "atan2",
    "inf",
    "nan",
    "Inf",
    "NaN",
];

/// The metric names a PromQL expression reads (not functions, keywords,
/// label names or values).
pub fn metric_names(expr: &str) -> BTreeSet<String> {
    // Drop string literals, label matchers and ranges.
    fn skip_string(quote: char, chars: &mut std::str::Chars<'_>) {
        while let Some(d) = chars.next() {
            if d == '\\' {
                chars.next();
            } else if d == quote {
                return;
            }
        }
    }
    let mut text = String::new();
    let mut chars = expr.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' | '`' => {
                skip_string(c, &mut chars);
                text.push(' ');
            }
            '{' | '[' => {
                let close = if c == '{' { '}' } else { ']' };
                while let Some(d) = chars.next() {
                    match d {
                        '"' | '\'' | '`' => skip_string(d, &mut chars),
                        _ if d == close => break,
                        _ => {}
                    }
                }
                text.push(' ');
            }
            _ => text.push(c),
        }
    }
    // Tokens; a label list follows by/without/on/ignoring/group_*.
    let mut tokens: Vec<String> = Vec::new();
    let mut current = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' || c == '.' {
            current.push(c);
        } else {
            if !current.is_empty() {
                tokens.push(std::mem::take(&mut current));
            }
            if !c.is_whitespace() {
                tokens.push(c.to_string());
            }
        }
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < tokens.len() {
        let token = &tokens[i];
        let starts_like_name = token
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':');
        if LABEL_LIST_KEYWORDS.contains(&token.as_str())
            && tokens.get(i + 1).map(String::as_str) == Some("(")
        {
            while i < tokens.len() && tokens[i] != ")" {
                i += 1;
            }
        } else if starts_like_name
            && !PROMQL_WORDS.contains(&token.as_str())
            && !LABEL_LIST_KEYWORDS.contains(&token.as_str())
            && tokens.get(i + 1).map(String::as_str) != Some("(")
        {
            names.insert(token.clone());
        }
        i += 1;
    }
    names
}

/// Series names in a Prometheus text exposition.
pub fn exposition_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names_are_read_from_promql() {
        let names = |e: &str| metric_names(e).into_iter().collect::<Vec<_>>();
        assert_eq!(
            names(
                "histogram_quantile(0.95, sum by (le, route) (rate(a_bucket{route=~\"x|y\"}[5m])))"
            ),
            ["a_bucket"]
        );
        assert_eq!(
            names("max(b) - max(c_total offset 1h) / on(pod) group_left(gpu) d"),
            ["b", "c_total", "d"]
        );
        assert_eq!(
            names("100 * (1 - sum without (gpu) (e{a=\"}\"}) / count(f)) > bool 0.5"),
            ["e", "f"]
        );
        assert_eq!(
            names("label_replace(g, \"pod\", \"$1\", \"exported_pod\", \"(.+)\")"),
            ["g"]
        );
    }
}
