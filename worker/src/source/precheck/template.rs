//! The job's chat template, checked against what the repository ships.

use common::result::{FailureCode, FailureReason};
use serde_json::Value;

use super::refuse;
use crate::template::{BUILTIN_NAMES, FROM_TOKENIZER, builtin};

/// Checks that the job's chat template can be selected: a built-in name, or
/// `tokenizer` with a template in `tokenizer_config.json` (`chat_template` as
/// a string, or a list holding a `default` entry) or a `chat_template.jinja`
/// file, as the engine reads them. Whether the template compiles and renders
/// is checked when the model is evaluated.
pub fn check_chat_template(
    name: &str,
    tokenizer_config_json: Option<&[u8]>,
    has_jinja_file: bool,
) -> Result<(), FailureReason> {
    let bad = |m: String| refuse(FailureCode::BadTemplate, m);
    if name != FROM_TOKENIZER {
        return match builtin(name) {
            Some(_) => Ok(()),
            None => Err(bad(format!(
                "unknown chat template `{}`: use one of {BUILTIN_NAMES:?} or `{FROM_TOKENIZER}`",
                name.escape_debug()
            ))),
        };
    }
    let template = match tokenizer_config_json {
        None => None,
        Some(bytes) => {
            let config: Value = serde_json::from_slice(bytes)
                .map_err(|e| bad(format!("tokenizer_config.json is not valid JSON: {e}")))?;
            match config.get("chat_template") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(!s.trim().is_empty()),
                Some(Value::Array(list)) => Some(list.iter().any(|t| {
                    t.get("name").and_then(Value::as_str) == Some("default")
                        && t.get("template").is_some_and(Value::is_string)
                })),
                Some(_) => Some(false),
            }
        }
    };
    match template {
        Some(true) => Ok(()),
        Some(false) => Err(bad(
            "tokenizer_config.json: `chat_template` must be a non-empty template string \
             or a list with a `default` entry"
                .into(),
        )),
        None if has_jinja_file => Ok(()),
        None => Err(bad(format!(
            "chat template `{FROM_TOKENIZER}` chosen but tokenizer_config.json has no \
             `chat_template` (and there is no chat_template.jinja): add one or name a built-in \
             template, one of {BUILTIN_NAMES:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_templates_need_nothing_from_the_repository() {
        for name in BUILTIN_NAMES {
            check_chat_template(name, None, false).unwrap();
        }
        let err = check_chat_template("nope", None, false).unwrap_err();
        assert_eq!(err.code, FailureCode::BadTemplate);
        assert!(
            err.message.contains("unknown chat template `nope`"),
            "{err}"
        );
        assert!(check_chat_template("", None, false).is_err());
        assert!(check_chat_template("Tokenizer", None, false).is_err());
    }

    #[test]
    fn the_tokenizer_template_must_be_in_the_repository() {
        let ok: &[&[u8]] = &[
            br#"{"chat_template": "{{ messages }}"}"#,
            br#"{"chat_template": [{"name": "tool_use", "template": "a"}, {"name": "default", "template": "b"}]}"#,
        ];
        for config in ok {
            check_chat_template(FROM_TOKENIZER, Some(config), false).unwrap();
        }
        // The engine also reads chat_template.jinja when the config has none.
        check_chat_template(FROM_TOKENIZER, Some(b"{}"), true).unwrap();
        check_chat_template(FROM_TOKENIZER, None, true).unwrap();
        let bad: &[(Option<&[u8]>, &str)] = &[
            (None, "has no `chat_template`"),
            (Some(b"{}"), "has no `chat_template`"),
            (
                Some(br#"{"chat_template": null}"#),
                "has no `chat_template`",
            ),
            (Some(br#"{"chat_template": "  "}"#), "non-empty"),
            (Some(br#"{"chat_template": 5}"#), "non-empty"),
            (
                Some(br#"{"chat_template": [{"name": "tool_use", "template": "a"}]}"#),
                "`default` entry",
            ),
            (
                Some(br#"{"chat_template": [{"name": "default", "template": 1}]}"#),
                "`default` entry",
            ),
            (Some(b"{nope"), "not valid JSON"),
        ];
        for (config, expected) in bad {
            let err = check_chat_template(FROM_TOKENIZER, *config, false).unwrap_err();
            assert_eq!(err.code, FailureCode::BadTemplate);
            assert!(err.message.contains(expected), "{expected}: {err}");
        }
        // An explicit but broken template is refused even when a jinja file exists.
        assert!(
            check_chat_template(FROM_TOKENIZER, Some(br#"{"chat_template": 5}"#), true).is_err()
        );
    }
}
