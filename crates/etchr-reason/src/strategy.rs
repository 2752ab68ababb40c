//! The three strategies, each a short script over [`Session`].

use etchr_upstream::{Message, Role};

use crate::answer::{extract_answer, final_answer, parse_verdict};
use crate::error::ReasonError;
use crate::messages::user;
use crate::prompt;
use crate::session::Session;
use crate::tools::{edit_image_tool, parse_arguments, to_original, TOOL_NAME};
use crate::trace::StepKind;

/// Edit → verify → reason over [original, edited] if the edit helps, else [original].
///
/// Up to `max_steps` candidate edits are verified one after another, each planned on the
/// original away from the regions the rejected ones showed (`Session::plan_alternative`); the
/// first the upstream accepts is used. `max_steps = 1` is the paper's single edit.
pub(crate) async fn evr(s: &mut Session<'_>) -> Result<(), ReasonError> {
    let q = s.question();
    let mut images = s.base_images().into_iter().cloned().collect::<Vec<_>>();
    let mut text = prompt::question(&q);
    let mut avoid = Vec::new();
    while s.views.len() < s.max_steps && !s.past_soft_deadline() {
        let Some(v) = s.plan_alternative(avoid.clone()).await? else {
            break;
        };
        let edited = s.view(v).cloned().expect("the view was just added");
        let mut with_edit = images.clone();
        with_edit.push(edited);
        let refs: Vec<_> = with_edit.iter().collect();
        let (resp, step) = s
            .call(
                StepKind::Verify,
                vec![user(prompt::verify(&q), &refs)],
                None,
            )
            .await?;
        let helps = parse_verdict(&resp.text()).unwrap_or(false);
        s.mark_helps(step, helps);
        if helps {
            images = with_edit;
            text = prompt::with_edit(&q);
            break;
        }
        avoid.extend(s.shown_region(v));
    }
    let refs: Vec<_> = images.iter().collect();
    let tools = s.answer_tools(None);
    let (resp, _) = s
        .call(StepKind::Reason, vec![user(text, &refs)], tools)
        .await?;
    if s.take_client_calls(&resp) {
        return Ok(());
    }
    let reply = resp.text();
    let (answer, source) = final_answer(&reply);
    s.set_answer(answer, source, reply, "answered");
    Ok(())
}

/// Reason → edit (conditioned on the reasoning so far) → reason → ... → answer or budget.
pub(crate) async fn progressive(s: &mut Session<'_>) -> Result<(), ReasonError> {
    let q = s.question();
    let base = s.base_images().into_iter().cloned().collect::<Vec<_>>();
    let refs: Vec<_> = base.iter().collect();
    let mut messages = vec![user(prompt::progressive_first(&q), &refs)];
    let mut reasoning: Vec<String> = Vec::new();
    let stop = loop {
        let tools = s.answer_tools(None);
        let (resp, _) = s.call(StepKind::Reason, messages.clone(), tools).await?;
        if s.take_client_calls(&resp) {
            return Ok(());
        }
        let text = resp.text();
        if let Some((answer, source)) = extract_answer(&text) {
            s.set_answer(answer, source, text, "answered");
            return Ok(());
        }
        messages.push(Message::text(Role::Assistant, text.clone()));
        reasoning.push(text);
        if s.views.len() >= s.max_steps {
            break "max_steps";
        }
        if s.past_soft_deadline() {
            break "deadline";
        }
        match s.plan_edit(Some(reasoning.join("\n\n"))).await? {
            Some(v) => {
                let view = s.view(v).cloned().expect("the view was just added");
                messages.push(user(prompt::progressive_view(v), &[&view]));
            }
            None => break "planner_exhausted",
        }
    };
    let tools = s.answer_tools(None);
    force_answer(s, messages, tools, stop).await
}

/// The upstream drives: it calls `edit_image`, the sidecar renders, until it answers.
pub(crate) async fn tools(s: &mut Session<'_>) -> Result<(), ReasonError> {
    let q = s.question();
    let convention = s.r.upstream.profile().box_convention;
    let tool = edit_image_tool(convention);
    let base = s.base_images().into_iter().cloned().collect::<Vec<_>>();
    let refs: Vec<_> = base.iter().collect();
    let mut messages = vec![user(prompt::tools_intro(&q, convention.as_str()), &refs)];
    let stop = loop {
        if s.views.len() >= s.max_steps {
            break "max_steps";
        }
        if s.past_soft_deadline() {
            break "deadline";
        }
        let tools = s.answer_tools(Some((tool.clone(), "auto")));
        let (resp, _) = s.call(StepKind::Reason, messages.clone(), tools).await?;
        if s.take_client_calls(&resp) {
            return Ok(());
        }
        let Some(msg) = resp.message().cloned() else {
            s.set_answer(
                String::new(),
                Default::default(),
                String::new(),
                "empty_reply",
            );
            return Ok(());
        };
        let calls = msg.tool_calls.clone().unwrap_or_default();
        if calls.is_empty() {
            let text = msg.text_content();
            let (answer, source) = final_answer(&text);
            s.set_answer(answer, source, text, "answered");
            return Ok(());
        }
        messages.push(msg);
        let mut results = Vec::new();
        for call in calls {
            let outcome = if s.views.len() >= s.max_steps {
                Err("the edit budget is spent; answer with what you have".to_string())
            } else if call.function.name != TOOL_NAME {
                Err(format!(
                    "unknown tool `{}`; the only tool is {TOOL_NAME}",
                    call.function.name
                ))
            } else {
                run_tool(s, &call.function.arguments, convention).await
            };
            let text = match outcome {
                Ok(v) => {
                    let img = s.view(v).cloned().expect("the view was just added");
                    let t = prompt::tool_result(v, img.info.width, img.info.height);
                    results.push(img);
                    t
                }
                Err(e) => {
                    s.note_error(StepKind::Tool, e.clone());
                    format!("error: {e}")
                }
            };
            messages.push(Message::tool_result(
                call.id.clone(),
                etchr_upstream::Content::Text(text),
            ));
        }
        // Tool messages cannot carry images on most providers: the images follow as a user turn.
        if !results.is_empty() {
            let refs: Vec<_> = results.iter().collect();
            messages.push(user("The edited image(s):", &refs));
        }
    };
    let tools = s.answer_tools(Some((tool, "none")));
    force_answer(s, messages, tools, stop).await
}

/// Parses, maps and renders one `edit_image` call; the new view's number, or an error for the
/// upstream to read.
async fn run_tool(
    s: &mut Session<'_>,
    arguments: &str,
    convention: etchr_upstream::BoxConvention,
) -> Result<usize, String> {
    let edit = parse_arguments(arguments)?;
    let view = s.view(edit.image).ok_or_else(|| {
        format!(
            "image {} does not exist (images 0..={} exist)",
            edit.image,
            s.views.len()
        )
    })?;
    let program = to_original(
        &edit.program,
        convention,
        (view.info.width, view.info.height),
        s.scale_of(edit.image),
        &view.transform,
    );
    s.tool_edit(program).await
}

/// A budget ended: one last call asking for the answer.
async fn force_answer(
    s: &mut Session<'_>,
    mut messages: Vec<Message>,
    tools: Option<(Vec<etchr_upstream::Tool>, serde_json::Value)>,
    stop: &str,
) -> Result<(), ReasonError> {
    messages.push(Message::text(Role::User, prompt::FORCE_ANSWER));
    s.set_forced();
    let (resp, _) = s.call(StepKind::Final, messages, tools).await?;
    if s.take_client_calls(&resp) {
        return Ok(());
    }
    let text = resp.text();
    let (answer, source) = final_answer(&text);
    s.set_answer(answer, source, text, stop);
    Ok(())
}
