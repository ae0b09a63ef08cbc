//! The leaderboard page at `/`: plain server-rendered HTML that reloads
//! itself every 30 seconds. Every value that comes from miners (hotkeys,
//! repository names, reasons) is HTML-escaped; links are built only from
//! checked repository names and escaped again.

use std::fmt::Write;

use crate::leaderboard::format_figure;
use crate::view::View;

/// Seconds between reloads of the page.
pub const REFRESH_SECONDS: u32 = 30;

/// Escapes `&`, `<`, `>`, `"` and `'`.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A hub repository part is safe in a URL path when it is only these characters.
fn url_safe(part: &str) -> bool {
    !part.is_empty()
        && part
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Renders the page.
pub fn render(view: &View, dry_run: bool) -> String {
    let board = &view.leaderboard;
    let mut html = String::with_capacity(4096 + 512 * board.entries.len());
    let _ = write!(
        html,
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="{REFRESH_SECONDS}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Roleplay LLM leaderboard</title>
<style>
body{{font-family:system-ui,sans-serif;margin:2rem;color:#1d2330;background:#f6f7fb}}
h1{{font-size:1.5rem;margin:0 0 .25rem}} p.meta{{color:#586074;margin:.25rem 0 1rem}}
table{{border-collapse:collapse;width:100%;background:#fff;box-shadow:0 1px 3px #0002}}
th,td{{padding:.45rem .6rem;border-bottom:1px solid #e3e6ee;text-align:left;font-size:.9rem}}
th{{background:#26324a;color:#fff}} td.n{{text-align:right;font-variant-numeric:tabular-nums}}
tr.INVALID td,tr.FAILED td{{color:#8a3b3b}} tr.COMPLETED td.w{{font-weight:600}}
.reason{{font-size:.8rem;color:#7a6a5a}} a{{color:#1f5fbf}}
</style></head><body>
<h1>Roleplay LLM leaderboard</h1>
<p class="meta" id="meta">Block {block} · aggregated at block {agg} · {rows} submissions · reloads every {REFRESH_SECONDS} s</p>
<table id="leaderboard"><thead><tr><th>Rank</th><th>UID</th><th>Miner</th><th>Model</th><th>Status</th>
<th>Similarity</th><th>Vibe</th><th>Latency</th><th>Size</th><th>Total</th><th>Weight</th></tr></thead><tbody>
"#,
        block = view.block,
        agg = board.block,
        rows = board.entries.len(),
    );
    if board.entries.is_empty() {
        html.push_str(r#"<tr><td colspan="11">No submissions yet.</td></tr>"#);
    }
    for (rank, e) in board.entries.iter().enumerate() {
        let status = e.status.map(|s| s.as_str()).unwrap_or("INVALID");
        let model = match &e.model {
            Some(m) if url_safe(&m.namespace) && url_safe(&m.name) => format!(
                r#"<a href="https://huggingface.co/{ns}/{name}" rel="nofollow noopener">{ns}/{name}</a> <span class="reason">{template}</span>"#,
                ns = escape(&m.namespace),
                name = escape(&m.name),
                template = escape(&m.chat_template),
            ),
            Some(m) => escape(&m.repo_id()),
            None => "–".into(),
        };
        let _ = write!(
            html,
            r#"<tr class="{status}" data-uid="{uid}"><td class="n">{rank}</td><td class="n">{uid}</td><td title="{hotkey}">{hotkey_short}</td><td>{model}</td><td>{status}"#,
            rank = rank + 1,
            uid = e.uid,
            hotkey = escape(&e.hotkey),
            hotkey_short = escape(&e.hotkey.chars().take(16).collect::<String>()),
        );
        if let Some(reason) = &e.reason {
            let _ = write!(html, r#"<div class="reason">{}</div>"#, escape(reason));
        }
        html.push_str("</td>");
        for figure in e.figures() {
            let _ = write!(html, r#"<td class="n">{}</td>"#, format_figure(figure, "–"));
        }
        let _ = writeln!(html, r#"<td class="n w">{:.4}</td></tr>"#, e.weight);
        if let Some(p) = &e.pending {
            let status = p.status.map(|s| s.as_str()).unwrap_or("QUEUED");
            let _ = writeln!(
                html,
                r#"<tr class="pending" data-uid="{uid}"><td></td><td class="n">{uid}</td><td></td><td>{model}</td><td>{status}<div class="reason">pending: the score above counts until this model's result</div></td><td colspan="6"></td></tr>"#,
                uid = e.uid,
                model = escape(&p.model.repo_id()),
            );
        }
    }
    html.push_str("</tbody></table>\n<h2>Weights</h2>\n");
    let w = &view.weights;
    let describe = |weights: &Option<common::chain_weights::U16Weights>, block: Option<u64>| match (
        weights, block,
    ) {
        (Some(weights), Some(block)) => {
            let pairs: Vec<String> = weights
                .uids
                .iter()
                .zip(&weights.weights)
                .map(|(u, w)| format!("{u}: {w}"))
                .collect();
            format!("at block {block}: {}", escape(&pairs.join(", ")))
        }
        _ => "none yet".into(),
    };
    let _ = writeln!(
        html,
        r#"<p id="weights-computed">Last computed {}</p><p id="weights-set">Last set on chain {}{}</p>"#,
        describe(&w.computed, w.computed_at_block),
        describe(&w.set, w.set_at_block),
        if dry_run {
            " (dry run: weights are not sent)"
        } else {
            ""
        },
    );
    if let Some(error) = &w.last_error {
        let _ = writeln!(
            html,
            r#"<p class="reason">Last attempt failed: {}</p>"#,
            escape(error)
        );
    }
    html.push_str(
        r#"<p class="meta">JSON: <a href="/v1/leaderboard">/v1/leaderboard</a> · <a href="/v1/weights">/v1/weights</a> · <a href="/openapi.json">/openapi.json</a></p>
</body></html>
"#,
    );
    html
}

#[cfg(test)]
mod tests {
    use common::job::ModelRef;

    use super::*;
    use crate::leaderboard::{Entry, Leaderboard};

    #[test]
    fn escapes_miner_text() {
        let view = View {
            leaderboard: Leaderboard {
                block: 5,
                entries: vec![Entry {
                    uid: 1,
                    hotkey: "<script>alert(1)</script>".into(),
                    block: Some(1),
                    model: Some(ModelRef {
                        namespace: "a\"b".into(),
                        name: "x".into(),
                        revision: "main".into(),
                        chat_template: "<b>".into(),
                    }),
                    job_id: None,
                    status: None,
                    components: None,
                    total: None,
                    score: 0.0,
                    reason: Some("<img src=x onerror=alert(1)>".into()),
                    weight: 0.0,
                    pending: Some(crate::leaderboard::Pending {
                        block: Some(2),
                        model: ModelRef {
                            namespace: "p".into(),
                            name: "<i>new</i>".into(),
                            revision: "main".into(),
                            chat_template: "chatml".into(),
                        },
                        job_id: common::job::JobId::for_model(
                            &ModelRef {
                                namespace: "p".into(),
                                name: "n".into(),
                                revision: "main".into(),
                                chat_template: "chatml".into(),
                            },
                            "v1",
                        ),
                        status: Some(common::job::JobStatus::Running),
                    }),
                }],
                ..Leaderboard::default()
            },
            ..View::default()
        };
        let html = render(&view, false);
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(html.contains("&lt;script&gt;"));
        assert!(html.contains("a&quot;b/x"));
        assert!(
            !html.contains("href=\"https://huggingface.co/a"),
            "unsafe names get no link"
        );
        // The pending model gets its own row, escaped like the rest.
        assert!(!html.contains("<i>new"), "{html}");
        assert!(html.contains("p/&lt;i&gt;new&lt;/i&gt;"), "{html}");
        assert!(
            html.contains(r#"<tr class="pending" data-uid="1">"#),
            "{html}"
        );
    }
}
