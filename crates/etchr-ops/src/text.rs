//! The compact text form of programs, for logs, prompts and (later) the editing model's
//! vocabulary. One op per line or `;`-separated; each op is its name followed by `key=value`
//! fields, for example
//!
//! ```text
//! crop box=120,40,380,200; zoom factor=2; box box=150,60,200,90 color=#e61919 label="Pump 7"
//! ```
//!
//! Values are numbers, `a,b,c` lists of numbers, bare words (`blue`, `#ff0000`, `dim`),
//! JSON strings, or any JSON value (`points=[[1,2],[3,4]]`). It maps one to one onto the JSON
//! form: `parse(&to_text(p)) == p` for every program.

use crate::error::OpsError;
use crate::program::Program;
use serde_json::{Map, Value};

/// Writes `program` in the text form.
pub fn to_text(program: &Program) -> String {
    let value = serde_json::to_value(program).expect("programs always serialise");
    let ops = value.as_array().expect("a program serialises as an array");
    ops.iter().map(op_to_text).collect::<Vec<_>>().join("; ")
}

fn op_to_text(op: &Value) -> String {
    let obj = op.as_object().expect("an op serialises as an object");
    let mut s = obj["op"].as_str().expect("every op has a name").to_string();
    for (k, v) in obj.iter().filter(|(k, _)| *k != "op") {
        s.push(' ');
        s.push_str(k);
        s.push('=');
        s.push_str(&value_to_text(v));
    }
    s
}

fn is_bare_word(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '#' | '.' | '-'))
        && s.parse::<f64>().is_err()
        && !matches!(s, "true" | "false" | "null" | "inf" | "nan")
}

fn value_to_text(v: &Value) -> String {
    match v {
        Value::String(s) if is_bare_word(s) => s.clone(),
        Value::Array(items) if items.len() >= 2 && items.iter().all(Value::is_number) => items
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(","),
        other => other.to_string(),
    }
}

/// Parses the text form.
pub fn parse(text: &str) -> Result<Program, OpsError> {
    let mut ops = Vec::new();
    for (offset, chunk) in split_outside(text, |c| c == ';' || c == '\n') {
        let trimmed = chunk.trim();
        if trimmed.is_empty() {
            continue;
        }
        let lead = offset + (chunk.len() - chunk.trim_start().len());
        let value = parse_op(trimmed, lead)?;
        ops.push(serde_json::from_value(value).map_err(|e| OpsError::Parse {
            offset: lead,
            reason: e.to_string(),
        })?);
    }
    Ok(Program(ops))
}

fn parse_op(text: &str, offset: usize) -> Result<Value, OpsError> {
    let mut fields = split_outside(text, char::is_whitespace)
        .into_iter()
        .filter(|(_, t)| !t.is_empty());
    let (_, name) = fields.next().expect("the caller skips empty ops");
    let mut obj = Map::new();
    obj.insert("op".into(), Value::String(name.to_string()));
    for (at, field) in fields {
        let err = |reason: String| OpsError::Parse {
            offset: offset + at,
            reason,
        };
        let (key, raw) = field
            .split_once('=')
            .ok_or_else(|| err(format!("expected key=value, found {field:?}")))?;
        if key.is_empty() {
            return Err(err("empty field name".into()));
        }
        let value = parse_value(raw).map_err(|e| err(format!("field {key:?}: {e}")))?;
        if obj.insert(key.to_string(), value).is_some() {
            return Err(err(format!("field {key:?} given twice")));
        }
    }
    Ok(Value::Object(obj))
}

fn parse_value(raw: &str) -> Result<Value, String> {
    if raw.starts_with(['"', '[', '{']) {
        return serde_json::from_str(raw).map_err(|e| e.to_string());
    }
    if raw.contains(',') {
        return raw
            .split(',')
            .map(|n| number(n).ok_or_else(|| format!("{n:?} is not a number")))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array);
    }
    if let Some(n) = number(raw) {
        return Ok(n);
    }
    Ok(match raw {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        "" => return Err("empty value".into()),
        word => Value::String(word.to_string()),
    })
}

fn number(s: &str) -> Option<Value> {
    // Through serde_json so integers stay integers (u32 fields reject 2.0).
    serde_json::from_str::<serde_json::Number>(s)
        .ok()
        .map(Value::Number)
}

/// Splits at `sep` characters that are outside quotes and brackets, with byte offsets.
fn split_outside(text: &str, sep: impl Fn(char) -> bool) -> Vec<(usize, &str)> {
    let mut parts = Vec::new();
    let (mut depth, mut in_str, mut escaped, mut start) = (0i32, false, false, 0);
    for (i, c) in text.char_indices() {
        if in_str {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_str = true,
            '[' | '{' => depth += 1,
            ']' | '}' => depth -= 1,
            c if depth <= 0 && sep(c) => {
                parts.push((start, &text[start..i]));
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push((start, &text[start..]));
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_documented_example() {
        let p = parse(r#"crop box=120,40,380,200; zoom factor=2; box box=150,60,200,90 color=#e61919 label="Pump 7""#).unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(parse(&to_text(&p)).unwrap(), p);
        assert_eq!(
            to_text(&p),
            r#"crop box=120.0,40.0,380.0,200.0; zoom factor=2.0 filter=bicubic; box box=150.0,60.0,200.0,90.0 color=#e61919 label="Pump 7" width=3.0"#
        );
    }

    #[test]
    fn every_op_round_trips() {
        let json = r##"[
            {"op":"crop","box":[1,2,30,40]},
            {"op":"zoom","width":300,"filter":"lanczos"},
            {"op":"rotate","angle":33.5,"fill":"#000"},
            {"op":"flip","axis":"vertical"},
            {"op":"box","box":[1,2,3,4],"label":"a \"quoted\"; tricky [label]"},
            {"op":"ellipse","box":[1,2,3,4],"fill":true},
            {"op":"line","from":[1,2],"to":[3,4]},
            {"op":"arrow","from":[1,2],"to":[3,4],"width":5},
            {"op":"polyline","points":[[1,2],[3,4],[5,6]],"closed":true},
            {"op":"point","at":[5,5]},
            {"op":"text","at":[5,5],"text":"12","background":"white"},
            {"op":"highlight","box":[0,0,5,5],"mode":"blur","amount":3},
            {"op":"mask","box":[0,0,5,5]},
            {"op":"enhance","mode":"gamma","amount":0.5,"box":[0,0,9,9]},
            {"op":"grid","rows":3,"cols":4,"labels":false},
            {"op":"measure","from":[0,0],"to":[3,4]},
            {"op":"jigsaw","rows":1,"cols":1,"order":[0]},
            {"op":"jigsaw_solve","rows":2,"cols":2},
            {"op":"reframe"},
            {"op":"flood","from":[1,1]},
            {"op":"path","from":[1,1],"to":[8,8],"wall_luma":50},
            {"op":"tiles","rows":2,"cols":2}
        ]"##;
        let p = Program::from_json(json).unwrap();
        let text = to_text(&p);
        assert_eq!(parse(&text).unwrap(), p, "{text}");
    }

    #[test]
    fn errors_point_at_the_field() {
        let e = parse("crop box=1,2,3,4; zoom factor").unwrap_err();
        match e {
            OpsError::Parse { offset, .. } => assert_eq!(offset, 23),
            other => panic!("{other:?}"),
        }
        assert!(parse("crop box=1,2,x,4").is_err());
        assert!(parse("teleport to=mars").is_err());
        assert!(parse("crop box=1,2,3,4 box=1,2,3,4").is_err());
        assert!(parse("").unwrap().is_empty());
    }
}
