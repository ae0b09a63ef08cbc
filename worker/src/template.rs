//! Chat templates, rendered in a sandbox.
//!
//! A submission names a built-in template (chatml, llama2, llama3, mistral,
//! vicuna, zephyr, alpaca, gemma, qwen) or `tokenizer` for the chat template
//! in the repository's `tokenizer_config.json`. Templates are untrusted
//! input: they render with minijinja (no file access, no code execution),
//! under a fuel limit so a looping template stops, and with a cap on the
//! output size.

use minijinja::{Environment, ErrorKind, Value, context};

use crate::dataset::Message;

/// Names of the built-in templates.
pub const BUILTIN_NAMES: &[&str] = &[
    "chatml", "llama2", "llama3", "mistral", "vicuna", "zephyr", "alpaca", "gemma", "qwen",
];

/// The template name that selects the repository's own template.
pub const FROM_TOKENIZER: &str = "tokenizer";

/// Instructions a template may execute per render; plenty for any real
/// template, and a quick stop for a looping one.
const FUEL: u64 = 1_000_000;

/// Largest rendered prompt accepted, in bytes.
const MAX_RENDERED_BYTES: usize = 1 << 20;

const CHATML: &str = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}\
{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

const LLAMA2: &str = "{% set ns = namespace(system='') %}{% for m in messages %}\
{% if m.role == 'system' %}{% set ns.system = '<<SYS>>\\n' ~ m.content ~ '\\n<</SYS>>\\n\\n' %}\
{% elif m.role == 'user' %}{{ bos_token }}[INST] {{ ns.system }}{{ m.content }} [/INST]{% set ns.system = '' %}\
{% else %} {{ m.content }} {{ eos_token }}{% endif %}{% endfor %}";

const LLAMA3: &str = "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m.role }}<|end_header_id|>\n\n\
{{ m.content }}<|eot_id|>{% endfor %}{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}";

const MISTRAL: &str = "{{ bos_token }}{% set ns = namespace(system='') %}{% for m in messages %}\
{% if m.role == 'system' %}{% set ns.system = m.content ~ '\\n\\n' %}\
{% elif m.role == 'user' %}[INST] {{ ns.system }}{{ m.content }} [/INST]{% set ns.system = '' %}\
{% else %}{{ m.content }}{{ eos_token }}{% endif %}{% endfor %}";

const VICUNA: &str = "{% for m in messages %}{% if m.role == 'system' %}{{ m.content }}\n\n\
{% elif m.role == 'user' %}USER: {{ m.content }}\n{% else %}ASSISTANT: {{ m.content }}{{ eos_token }}\n{% endif %}{% endfor %}\
{% if add_generation_prompt %}ASSISTANT:{% endif %}";

const ZEPHYR: &str = "{% for m in messages %}<|{{ m.role }}|>\n{{ m.content }}{{ eos_token }}\n{% endfor %}\
{% if add_generation_prompt %}<|assistant|>\n{% endif %}";

const ALPACA: &str = "{% for m in messages %}{% if m.role == 'system' %}{{ m.content }}\n\n\
{% elif m.role == 'user' %}### Instruction:\n{{ m.content }}\n\n{% else %}### Response:\n{{ m.content }}\n\n{% endif %}{% endfor %}\
{% if add_generation_prompt %}### Response:\n{% endif %}";

const GEMMA: &str = "{{ bos_token }}{% set ns = namespace(system='') %}{% for m in messages %}\
{% if m.role == 'system' %}{% set ns.system = m.content ~ '\\n\\n' %}\
{% else %}<start_of_turn>{{ 'model' if m.role == 'assistant' else 'user' }}\n{{ ns.system }}{{ m.content }}<end_of_turn>\n\
{% set ns.system = '' %}{% endif %}{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}";

/// The source of a built-in template.
pub fn builtin(name: &str) -> Option<&'static str> {
    Some(match name {
        "chatml" | "qwen" => CHATML,
        "llama2" => LLAMA2,
        "llama3" => LLAMA3,
        "mistral" => MISTRAL,
        "vicuna" => VICUNA,
        "zephyr" => ZEPHYR,
        "alpaca" => ALPACA,
        "gemma" => GEMMA,
        _ => return None,
    })
}

/// Why a template cannot be used; the model's fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unknown chat template `{0}`: use one of {BUILTIN_NAMES:?} or `tokenizer`")]
    Unknown(String),
    #[error("chat template `tokenizer` chosen but tokenizer_config.json has no chat_template")]
    MissingInTokenizer,
    #[error("chat template does not compile: {0}")]
    Invalid(String),
    #[error("chat template failed to render: {0}")]
    Render(String),
    #[error("chat template ran out of fuel (it loops or is far too expensive)")]
    TooExpensive,
    #[error("chat template rendered more than {MAX_RENDERED_BYTES} bytes")]
    TooLarge,
    #[error("chat template rendered an empty prompt")]
    Empty,
}

/// A compiled chat template with the special tokens it may reference.
#[derive(Debug)]
pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
}

impl ChatTemplate {
    /// Selects the template `name`, taking `tokenizer_template` (the
    /// repository's own) when the name is `tokenizer`.
    pub fn select(
        name: &str,
        tokenizer_template: Option<&str>,
        bos_token: &str,
        eos_token: &str,
    ) -> Result<Self, TemplateError> {
        let source = if name == FROM_TOKENIZER {
            tokenizer_template
                .ok_or(TemplateError::MissingInTokenizer)?
                .to_owned()
        } else {
            builtin(name)
                .ok_or_else(|| TemplateError::Unknown(name.to_owned()))?
                .to_owned()
        };
        let mut env = Environment::new();
        env.set_fuel(Some(FUEL));
        // Hugging Face renders templates with these; so must we, or prompts differ.
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_recursion_limit(64);
        minijinja_contrib::add_to_environment(&mut env);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |message: String| -> Result<Value, minijinja::Error> {
                Err(minijinja::Error::new(ErrorKind::InvalidOperation, message))
            },
        );
        env.add_template_owned("chat", source)
            .map_err(|e| TemplateError::Invalid(e.to_string()))?;
        Ok(Self {
            env,
            bos_token: bos_token.to_owned(),
            eos_token: eos_token.to_owned(),
        })
    }

    /// Renders `messages`, ending with the assistant's turn opener when
    /// `add_generation_prompt` is set.
    pub fn render(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
    ) -> Result<String, TemplateError> {
        let template = self
            .env
            .get_template("chat")
            .map_err(|e| TemplateError::Invalid(e.to_string()))?;
        let rendered = template
            .render(context! {
                messages => messages,
                add_generation_prompt => add_generation_prompt,
                bos_token => &self.bos_token,
                eos_token => &self.eos_token,
            })
            .map_err(|e| match e.kind() {
                ErrorKind::OutOfFuel => TemplateError::TooExpensive,
                _ => TemplateError::Render(e.to_string()),
            })?;
        if rendered.len() > MAX_RENDERED_BYTES {
            return Err(TemplateError::TooLarge);
        }
        if rendered.trim().is_empty() {
            return Err(TemplateError::Empty);
        }
        Ok(rendered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::Role;

    fn messages() -> Vec<Message> {
        vec![
            Message {
                role: Role::System,
                content: "You are Bram.".into(),
            },
            Message {
                role: Role::User,
                content: "Hello!".into(),
            },
        ]
    }

    #[test]
    fn builtins_render_the_expected_shapes() {
        let render = |name: &str| {
            ChatTemplate::select(name, None, "<s>", "</s>")
                .unwrap()
                .render(&messages(), true)
                .unwrap()
        };
        assert_eq!(
            render("chatml"),
            "<|im_start|>system\nYou are Bram.<|im_end|>\n<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n"
        );
        assert_eq!(
            render("llama2"),
            "<s>[INST] <<SYS>>\nYou are Bram.\n<</SYS>>\n\nHello! [/INST]"
        );
        assert_eq!(
            render("mistral"),
            "<s>[INST] You are Bram.\n\nHello! [/INST]"
        );
        assert_eq!(
            render("vicuna"),
            "You are Bram.\n\nUSER: Hello!\nASSISTANT:"
        );
        assert_eq!(
            render("gemma"),
            "<s><start_of_turn>user\nYou are Bram.\n\nHello!<end_of_turn>\n<start_of_turn>model\n"
        );
        for name in BUILTIN_NAMES {
            assert!(render(name).contains("Hello!"), "{name}");
        }
    }

    #[test]
    fn hostile_or_broken_templates_fail_cleanly() {
        assert_eq!(
            ChatTemplate::select("nope", None, "", "").unwrap_err(),
            TemplateError::Unknown("nope".into())
        );
        assert_eq!(
            ChatTemplate::select("tokenizer", None, "", "").unwrap_err(),
            TemplateError::MissingInTokenizer
        );
        assert!(matches!(
            ChatTemplate::select("tokenizer", Some("{% for x in %}"), "", ""),
            Err(TemplateError::Invalid(_))
        ));
        let looping =
            "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}";
        let template = ChatTemplate::select("tokenizer", Some(looping), "", "").unwrap();
        assert_eq!(
            template.render(&messages(), true).unwrap_err(),
            TemplateError::TooExpensive
        );
        let raising = "{{ raise_exception('roles must alternate') }}";
        let template = ChatTemplate::select("tokenizer", Some(raising), "", "").unwrap();
        assert!(
            matches!(template.render(&messages(), true), Err(TemplateError::Render(m)) if m.contains("alternate"))
        );
        // No file system: includes have nothing to load.
        let include = "{% include '/etc/passwd' %}";
        let template = ChatTemplate::select("tokenizer", Some(include), "", "").unwrap();
        assert!(matches!(
            template.render(&messages(), true),
            Err(TemplateError::Render(_))
        ));
        // Repository templates with python-style methods still work.
        let pythonic = "{% for m in messages %}{{ m.content.strip() | upper }}{% endfor %}";
        let template = ChatTemplate::select("tokenizer", Some(pythonic), "", "").unwrap();
        assert_eq!(
            template.render(&messages(), false).unwrap(),
            "YOU ARE BRAM.HELLO!"
        );
    }
}
