//! Reading the answer out of an upstream reply.
//!
//! Order of preference: the *last* `\boxed{...}` (braces may nest: `\boxed{\frac{1}{2}}`), then
//! the last `ANSWER:` line, else the whole reply trimmed. Verification replies are `\boxed{1}`
//! (the edit helps) or `\boxed{0}`.

use serde::{Deserialize, Serialize};

/// Where the answer was found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerSource {
    Boxed,
    AnswerTag,
    #[default]
    Text,
}

/// The content of the last `\boxed{...}`, braces balanced; `None` if there is none (or it is
/// unterminated).
pub fn last_boxed(text: &str) -> Option<String> {
    let start = text.rfind("\\boxed{")? + "\\boxed{".len();
    let mut depth = 1usize;
    for (i, c) in text[start..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(text[start..start + i].trim().to_string());
                }
            }
            _ => {}
        }
    }
    None
}

/// The rest of the line after the last `ANSWER:` (case-insensitive).
fn answer_tag(text: &str) -> Option<String> {
    let upper = text.to_ascii_uppercase();
    let at = upper.rfind("ANSWER:")? + "ANSWER:".len();
    let line = text[at..].lines().next().unwrap_or("").trim();
    let line = line.trim_matches(|c| c == '*' || c == '`').trim();
    (!line.is_empty()).then(|| line.to_string())
}

/// An explicit answer (`\boxed{}` or `ANSWER:`), if the reply contains one.
pub fn extract_answer(text: &str) -> Option<(String, AnswerSource)> {
    if let Some(b) = last_boxed(text) {
        return Some((b, AnswerSource::Boxed));
    }
    answer_tag(text).map(|a| (a, AnswerSource::AnswerTag))
}

/// The answer of a final reply: explicit if present, else the plain text.
pub fn final_answer(text: &str) -> (String, AnswerSource) {
    extract_answer(text).unwrap_or_else(|| (text.trim().to_string(), AnswerSource::Text))
}

/// A verification verdict: `\boxed{1}` / yes / true → helps; `\boxed{0}` / no / false → not.
pub fn parse_verdict(text: &str) -> Option<bool> {
    let v = last_boxed(text).or_else(|| answer_tag(text))?;
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "yes" | "true" => Some(true),
        "0" | "no" | "false" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxed_last_and_nested() {
        assert_eq!(
            extract_answer("first \\boxed{A} then \\boxed{\\frac{1}{2}} done"),
            Some(("\\frac{1}{2}".into(), AnswerSource::Boxed))
        );
        assert_eq!(last_boxed("\\boxed{unterminated"), None);
    }

    #[test]
    fn answer_tag_and_text() {
        assert_eq!(
            extract_answer("thinking...\nAnswer: **B**\nmore"),
            Some(("B".into(), AnswerSource::AnswerTag))
        );
        assert_eq!(extract_answer("just words"), None);
        assert_eq!(
            final_answer("  just words \n"),
            ("just words".into(), AnswerSource::Text)
        );
    }

    #[test]
    fn verdicts() {
        assert_eq!(parse_verdict("it helps \\boxed{1}"), Some(true));
        assert_eq!(parse_verdict("\\boxed{ 0 }"), Some(false));
        assert_eq!(parse_verdict("maybe"), None);
    }
}
