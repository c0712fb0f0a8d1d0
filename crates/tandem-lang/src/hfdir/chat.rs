//! Conversations rendered with a tokenizer's own chat template: TRL's
//! conversational preference records (`prompt`, `chosen`, `rejected` as
//! lists of `{role, content}` messages) become the prompt and response
//! texts the model reads, as transformers' `apply_chat_template` renders
//! them. The template is the Jinja text of `tokenizer_config.json`'s
//! `chat_template`, run by minijinja with Python's string methods.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

/// A tokenizer's chat template and the special tokens it may name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatTemplate {
    pub template: String,
    pub bos_token: String,
    pub eos_token: String,
}

/// A special token as `tokenizer_config.json` writes it: a string, or an
/// object with its `content`.
fn token(v: Option<&serde_json::Value>) -> String {
    match v {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Object(o)) => o.get("content").and_then(|c| c.as_str()).unwrap_or("").to_string(),
        _ => String::new(),
    }
}

impl ChatTemplate {
    /// The chat template of a model directory, where transformers keeps
    /// it: `chat_template.jinja` (what transformers writes today), else
    /// `tokenizer_config.json`'s `chat_template` (the one named `default`
    /// when it lists several); None when it has none. The special tokens
    /// come from `tokenizer_config.json`.
    pub fn of_dir(dir: &Path) -> Result<Option<ChatTemplate>, String> {
        let read = |name: &str| match std::fs::read_to_string(dir.join(name)) {
            Ok(t) => Ok(Some(t)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}: {e}", dir.join(name).display())),
        };
        let jinja = read("chat_template.jinja")?;
        let path = dir.join("tokenizer_config.json");
        let v: serde_json::Value = match read("tokenizer_config.json")? {
            Some(text) => serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?,
            None => serde_json::Value::Null,
        };
        let template = match (jinja, v.get("chat_template")) {
            (Some(t), _) => t,
            (None, Some(serde_json::Value::String(t))) => t.clone(),
            (None, Some(serde_json::Value::Array(named))) => match named
                .iter()
                .find(|n| n.get("name").and_then(|s| s.as_str()) == Some("default"))
                .and_then(|n| n.get("template"))
                .and_then(|t| t.as_str())
            {
                Some(t) => t.to_string(),
                None => return Err(format!("{}: several chat templates and none named `default`", path.display())),
            },
            (None, _) => return Ok(None),
        };
        Ok(Some(ChatTemplate { template, bos_token: token(v.get("bos_token")), eos_token: token(v.get("eos_token")) }))
    }

    /// The conversation as the template renders it.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String, String> {
        let mut env = minijinja::Environment::new();
        minijinja_contrib::add_to_environment(&mut env);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        // transformers' templates stop on a bad conversation this way.
        env.add_function("raise_exception", |msg: String| -> Result<String, minijinja::Error> {
            Err(minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, msg))
        });
        env.add_template("chat", &self.template).map_err(|e| format!("the chat template does not parse: {e}"))?;
        let t = env.get_template("chat").map_err(|e| e.to_string())?;
        t.render(minijinja::context! {
            messages => minijinja::Value::from(minijinja::value::Serde(messages)),
            add_generation_prompt => add_generation_prompt,
            bos_token => &self.bos_token,
            eos_token => &self.eos_token,
        })
        .map_err(|e| format!("the chat template fails: {e}"))
    }

    /// A preference record's texts, as TRL renders a conversational one:
    /// the prompt with the generation prompt added, and each response as
    /// what the whole conversation adds after that prompt.
    pub fn record(
        &self,
        prompt: &[Message],
        chosen: &[Message],
        rejected: &[Message],
    ) -> Result<(String, String, String), String> {
        let p = self.render(prompt, true)?;
        let after = |response: &[Message], which: &str| -> Result<String, String> {
            let whole = self.render(&[prompt, response].concat(), false)?;
            whole.strip_prefix(&p).map(str::to_string).ok_or_else(|| {
                format!("the template renders the conversation with the {which} response so that it does not begin with the rendered prompt")
            })
        };
        Ok((p.clone(), after(chosen, "chosen")?, after(rejected, "rejected")?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chatml() -> ChatTemplate {
        ChatTemplate {
            template: "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] | trim }}<|end|>{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}".into(),
            bos_token: "<s>".into(),
            eos_token: "</s>".into(),
        }
    }

    fn m(role: &str, content: &str) -> Message {
        Message { role: role.into(), content: content.into() }
    }

    #[test]
    fn a_record_renders_as_prompt_and_what_each_response_adds() {
        let (p, c, r) =
            chatml().record(&[m("user", " Hi? ")], &[m("assistant", "Hello.")], &[m("assistant", "Go away.")]).unwrap();
        assert_eq!(p, "<s><|user|>Hi?<|end|><|assistant|>");
        // The generation prompt is not the assistant's own tag in this
        // template, so the response texts are what follows the prompt.
        assert_eq!(c, "Hello.<|end|>");
        assert_eq!(r, "Go away.<|end|>");
    }

    #[test]
    fn python_string_methods_and_raise_exception_work_as_in_transformers() {
        let t = ChatTemplate {
            template: "{% if messages[0]['role'] != 'user' %}{{ raise_exception('user first') }}{% endif %}{{ messages[0]['content'].strip().upper() }}".into(),
            bos_token: String::new(),
            eos_token: String::new(),
        };
        assert_eq!(t.render(&[m("user", " hi ")], false).unwrap(), "HI");
        let e = t.render(&[m("system", "x")], false).unwrap_err();
        assert!(e.contains("user first"), "{e}");
    }
}
