//! The words the loop says to the upstream. Kept in one place so they can be tuned (and
//! logged with the trajectories) without touching the control flow.

/// Appended to the question on every reasoning call.
pub const ANSWER_FORMAT: &str =
    "Think step by step, then give the final answer as \\boxed{ANSWER}.";

/// The question with the answer-format instruction.
pub fn question(question: &str) -> String {
    format!("{}\n\n{ANSWER_FORMAT}", question.trim())
}

/// `evr`'s verification request, sent with [original, edited].
pub fn verify(question: &str) -> String {
    format!(
        "Question: {}\n\nThe second image is an edited view of the first (cropped, zoomed or \
         annotated) made to help answer the question. Does the edited view help answer it? \
         Reply with \\boxed{{1}} if it helps or \\boxed{{0}} if it does not.",
        question.trim()
    )
}

/// `evr`'s reasoning request when the edit is used.
pub fn with_edit(question: &str) -> String {
    format!(
        "{}\n\nThe second image is an edited view of the first (cropped, zoomed or annotated) \
         that may help.\n{ANSWER_FORMAT}",
        question.trim()
    )
}

/// `progressive`: introduces the next edited view.
pub fn progressive_view(view: usize) -> String {
    format!(
        "Here is edited view #{view} of the image (cropped and zoomed to help). Continue your \
         reasoning. When you are sure, give the final answer as \\boxed{{ANSWER}}; otherwise \
         say what you still need to see."
    )
}

/// `progressive`: the first call asks for reasoning, not necessarily an answer.
pub fn progressive_first(question: &str) -> String {
    format!(
        "{}\n\nReason step by step about what in the image answers this. If you are sure, give \
         the final answer as \\boxed{{ANSWER}}; if a closer look would help, say what to look \
         at and an edited view will follow.",
        question.trim()
    )
}

/// The forced-answer call when a budget ends.
pub const FORCE_ANSWER: &str = "Stop here and give your final answer now, as \\boxed{ANSWER}.";

/// `tools`: how the upstream should call `edit_image`.
pub fn tools_intro(question: &str, convention: &str) -> String {
    format!(
        "{}\n\nYou can call the `edit_image` tool to crop, zoom, highlight or annotate an image \
         when a closer look would help. Images are numbered in the order you receive them: \
         image 0 is the original and each edit_image result is the next number. Boxes are \
         [x1, y1, x2, y2] in the {convention} convention of the image you name. When you know \
         the answer, reply with it as \\boxed{{ANSWER}} without calling the tool.",
        question.trim()
    )
}

/// `tools`: the text sent with an edit result.
pub fn tool_result(view: usize, width: u32, height: u32) -> String {
    format!("edit_image produced image {view} ({width}x{height}); it follows.")
}
