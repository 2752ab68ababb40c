//! Provider-specific request shaping: the small rewrites that turn a generic chat request into one
//! each provider accepts. Pure functions over [`ChatRequest`], so each quirk is unit-tested.

use serde_json::Value;

use crate::profile::{Profile, Provider};
use crate::types::{ChatRequest, Content, ContentPart, Role};

/// Applies every rewrite `profile` needs, in place.
pub fn shape_request(req: &mut ChatRequest, profile: &Profile) {
    if req.model.is_empty() {
        req.model.clone_from(&profile.model);
    }
    match profile.provider {
        Provider::Kimi => shape_kimi(req),
        Provider::Openai | Provider::Gemini => strip_reasoning(req),
        // vLLM ignores unknown message keys and its reasoning parsers use them; DashScope accepts
        // `reasoning_content` on history messages.
        Provider::Vllm | Provider::Qwen => {}
    }
}

/// Whether a Kimi request runs in thinking mode: the `*-thinking` models always do, K2.5 and later
/// do unless `thinking.type` is `disabled`.
pub fn kimi_thinking(req: &ChatRequest) -> bool {
    let switch = req
        .extra
        .get("thinking")
        .and_then(|t| t.get("type"))
        .and_then(Value::as_str);
    match switch {
        Some("enabled") => true,
        Some("disabled") => false,
        _ => {
            let m = req.model.to_ascii_lowercase();
            m.contains("thinking") || m.starts_with("kimi-k2.") || m.starts_with("kimi-k3")
        }
    }
}

/// Moonshot quirks:
/// - with images in the request, content must be a real array of parts: plain strings become one
///   text part, and a string holding a JSON-serialised part array (a common client bug) is parsed;
/// - while thinking, `tool_choice` may only be `auto` or `none`: `required` and named functions
///   degrade to `auto` (the tools are still offered);
/// - `reasoning_content` stays on assistant messages (Moonshot rejects tool-call turns without it).
pub fn shape_kimi(req: &mut ChatRequest) {
    for msg in &mut req.messages {
        if let Some(Content::Text(s)) = &msg.content {
            if let Some(parts) = parse_stringified_parts(s) {
                msg.content = Some(Content::Parts(parts));
            }
        }
    }
    if req.has_images() {
        for msg in &mut req.messages {
            if matches!(msg.role, Role::User | Role::Tool) {
                if let Some(Content::Text(s)) = &msg.content {
                    msg.content = Some(Content::Parts(vec![ContentPart::text(s.clone())]));
                }
            }
        }
    }
    if kimi_thinking(req) {
        let allowed = matches!(
            req.tool_choice.as_ref().and_then(Value::as_str),
            Some("auto" | "none")
        );
        if req.tool_choice.is_some() && !allowed {
            tracing::debug!(
                "kimi: tool_choice other than auto/none is refused while thinking; sending auto"
            );
            req.tool_choice = Some(Value::String("auto".into()));
        }
    }
}

/// `"[{\"type\":\"text\",...}]"` → the parts, when the string is exactly such an array.
fn parse_stringified_parts(s: &str) -> Option<Vec<ContentPart>> {
    let t = s.trim();
    if !(t.starts_with('[') && t.ends_with(']') && t.contains("\"type\"")) {
        return None;
    }
    let parts: Vec<ContentPart> = serde_json::from_str(t).ok()?;
    let all_known = !parts.is_empty()
        && parts
            .iter()
            .all(|p| matches!(p, ContentPart::Text { .. } | ContentPart::ImageUrl { .. }));
    all_known.then_some(parts)
}

/// OpenAI and Gemini refuse unknown message fields; thinking text is theirs to keep, not ours to send.
fn strip_reasoning(req: &mut ChatRequest) {
    for m in &mut req.messages {
        m.reasoning_content = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::Profile;
    use crate::types::{FunctionCall, Message, ToolCall};
    use serde_json::{json, Map};

    fn kimi() -> Profile {
        Profile::new(Provider::Kimi, "https://api.moonshot.ai/v1", "kimi-k2.5")
    }

    #[test]
    fn kimi_gets_content_arrays_when_images_are_present() {
        let mut req = ChatRequest::new(
            "",
            vec![
                Message::text(Role::System, "sys"),
                Message::text(Role::User, "first"),
                Message::user_with_image("look", "data:image/png;base64,AA=="),
            ],
        );
        shape_request(&mut req, &kimi());
        assert_eq!(req.model, "kimi-k2.5");
        let v = serde_json::to_value(&req).unwrap();
        assert_eq!(v["messages"][0]["content"], "sys");
        assert_eq!(
            v["messages"][1]["content"],
            json!([{"type": "text", "text": "first"}])
        );
        assert!(v["messages"][2]["content"].is_array());
    }

    #[test]
    fn kimi_parses_stringified_part_arrays() {
        let s = r#"[{"type":"text","text":"hi"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AA=="}}]"#;
        let mut req = ChatRequest::new("kimi-k2.5", vec![Message::text(Role::User, s)]);
        shape_request(&mut req, &kimi());
        assert!(req.messages[0].has_images());
        // A string that merely looks like JSON is left alone.
        let mut req = ChatRequest::new("kimi-k2.5", vec![Message::text(Role::User, "[1, 2]")]);
        shape_request(&mut req, &kimi());
        assert_eq!(
            req.messages[0].content,
            Some(Content::Text("[1, 2]".into()))
        );
    }

    #[test]
    fn kimi_tool_choice_is_downgraded_only_while_thinking() {
        let mut req = ChatRequest::new("kimi-k2.5", vec![Message::text(Role::User, "x")]);
        req.tool_choice = Some(json!("required"));
        shape_request(&mut req, &kimi());
        assert_eq!(req.tool_choice, Some(json!("auto")));

        let mut req = ChatRequest::new("kimi-k2.5", vec![Message::text(Role::User, "x")]);
        req.tool_choice = Some(json!({"type": "function", "function": {"name": "zoom"}}));
        req.extra
            .insert("thinking".into(), json!({"type": "disabled"}));
        shape_request(&mut req, &kimi());
        assert_eq!(req.tool_choice.unwrap()["function"]["name"], "zoom");

        let mut req = ChatRequest::new(
            "moonshot-v1-8k-vision-preview",
            vec![Message::text(Role::User, "x")],
        );
        req.tool_choice = Some(json!("none"));
        assert!(!kimi_thinking(&req));
    }

    #[test]
    fn reasoning_content_kept_for_kimi_and_stripped_for_openai() {
        let mut assistant = Message::text(Role::Assistant, "");
        assistant.content = None;
        assistant.reasoning_content = Some("I should zoom".into());
        assistant.tool_calls = Some(vec![ToolCall {
            id: "c1".into(),
            kind: "function".into(),
            function: FunctionCall {
                name: "edit_image".into(),
                arguments: "{}".into(),
            },
            extra: Map::new(),
        }]);
        let history = vec![
            Message::text(Role::User, "q"),
            assistant,
            Message::tool_result("c1", Content::Text("done".into())),
        ];

        let mut k = ChatRequest::new("kimi-k2.5", history.clone());
        shape_request(&mut k, &kimi());
        let v = serde_json::to_value(&k).unwrap();
        assert_eq!(v["messages"][1]["reasoning_content"], "I should zoom");

        let mut o = ChatRequest::new("gpt-4.1", history);
        shape_request(
            &mut o,
            &Profile::new(Provider::Openai, "https://api.openai.com/v1", ""),
        );
        let v = serde_json::to_value(&o).unwrap();
        assert!(v["messages"][1].get("reasoning_content").is_none());
        assert_eq!(
            v["messages"][1]["tool_calls"][0]["function"]["name"],
            "edit_image"
        );
    }
}
