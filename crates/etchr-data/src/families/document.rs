//! Document: a page with one or two dense tables in a small font. Rows are keyed by a quotable
//! name (`Harbor 27`), columns by a header; every data cell holds a code.
//!
//! The reader answers with the token *after the quoted key on its line*, which on the page is
//! the first data column. So the gold edit crops the row from the key cell to the target cell,
//! masks the columns in between and moves the target cell right next to the key with a 1 × N
//! tile permutation (`jigsaw`) — a purely geometric edit, no text is written — then zooms.
//! All columns share one width so the row strip splits into equal tiles, and the key column
//! is right-aligned so the key and the moved code sit one gap apart, as on one text line.

use super::{fill, paper, Built};
use crate::codes::{sentence, CodeBook, HEADERS, ORDINALS, PLACES};
use crate::draw::{Canvas, Face};
use crate::plan::{self, canvas_size, fmt_box, legibility, zoom_factor};
use crate::rng::Rng;
use crate::AnswerFormat;
use etchr_ops::{Color, Op, Rect};
use serde_json::json;

const QUESTIONS: &[&str] = &[
    r#"In the register, what is the {header} code for the row "{key}"?"#,
    r#"Find the row "{key}" and read its {header} column. Which code is there?"#,
    r#"What code appears in the {ordinal} data column ({header}) of the row "{key}"?"#,
    r#"Look up "{key}" in the table: what is its {header} code?"#,
];

struct Cell {
    key: String,
    code: String,
    strip: Rect,
    block: usize,
    row: usize,
}

pub fn build(rng: &mut Rng, small: bool) -> Built {
    let (w, h) = canvas_size(
        rng,
        plan::min_long_side(small),
        4000,
        &[0.707, 0.75, 0.8, 1.414],
    );
    let long = w.max(h) as f64;
    let bg = paper(rng);
    let mut c = Canvas::new(w, h, bg);
    let face = *rng.pick(&Face::ALL);
    let cap = plan::answer_cap(rng, small, long);
    let size = face.size_for_cap(cap);
    let pad = (size * 0.45).round().max(2.0);
    let row_h = (face.height(size) * 1.45).round();
    // One width for every column (the gold edit cuts the row into equal tiles), wide enough
    // for any key, code or header; as many data columns as the page allows, up to 7.
    let col_w = [face.width(size, "Prairie 99"), face.width(size, "WWWWWW")]
        .into_iter()
        .chain(HEADERS.iter().map(|h| face.width(size, h)))
        .fold(0.0, f64::max);
    let col_w = (col_w + 2.0 * pad).ceil();
    let margin = (long * 0.04).round();
    let fit = ((w as f64 - 2.0 * margin) / col_w).floor() as i64 - 1;
    let n_data = rng.int(3.min(fit), 7.min(fit)).max(1) as usize;
    let headers = rng.sample(HEADERS, n_data);
    let table_w = col_w * (n_data + 1) as f64;
    let gap = (col_w * 0.8).round();
    let max_blocks =
        (((w as f64 - 2.0 * margin + gap) / (table_w + gap)).floor() as usize).clamp(1, 2);
    let blocks = rng.int(1, max_blocks as i64) as usize;

    // Title and a short note above the tables.
    let title_size = (size * 2.0).max(long / 70.0);
    let ink = [25, 25, 30];
    let mut y = margin;
    let title = format!(
        "{} {}",
        sentence(rng, 3).trim_end_matches('.'),
        rng.int(3, 9)
    );
    c.text(margin, y, &title, face, title_size, ink);
    y += face.height(title_size) * 1.4;
    for _ in 0..rng.int(1, 3) {
        let words = rng.int(6, 12) as usize;
        let line = sentence(rng, words);
        c.text(margin, y, &line, face, size, [70, 70, 75]);
        y += row_h;
    }
    y = (y + row_h * 0.6).round();

    let total_w = blocks as f64 * table_w + (blocks as f64 - 1.0) * gap;
    let x_start = ((w as f64 - total_w) / 2.0).round();
    let rows = (((h as f64 - margin - y) / row_h).floor() as usize)
        .saturating_sub(1)
        .clamp(3, 90);
    let zebra = rng.chance(0.5);
    let line_c = [185, 185, 190];
    let mut used = Vec::new();
    let mut book = CodeBook::new();
    let mut cells: Vec<Vec<Cell>> = Vec::new();
    for b in 0..blocks {
        let x0 = (x_start + b as f64 * (table_w + gap)).round();
        // Header row.
        c.fill_rect(Rect::new(x0, y, x0 + table_w, y + row_h), [215, 220, 228]);
        let ty = y + (row_h - face.height(size)) / 2.0;
        let kh = "Item";
        c.text(
            x0 + col_w - pad - face.width(size, kh),
            ty,
            kh,
            face,
            size,
            ink,
        );
        for (j, hd) in headers.iter().enumerate() {
            c.text(x0 + col_w * (j + 1) as f64 + pad, ty, hd, face, size, ink);
        }
        for r in 0..rows {
            let ry = y + row_h * (r + 1) as f64;
            let strip_row = Rect::new(x0, ry, x0 + table_w, ry + row_h);
            if zebra && r % 2 == 1 {
                c.fill_rect(
                    strip_row,
                    [
                        bg[0].saturating_sub(12),
                        bg[1].saturating_sub(10),
                        bg[2].saturating_sub(6),
                    ],
                );
            }
            let key = loop {
                let k = (rng.below(PLACES.len() as u64) as usize, rng.int(10, 99));
                if !used.contains(&k) {
                    used.push(k);
                    break format!("{} {}", PLACES[k.0], k.1);
                }
            };
            let tyr = ry + (row_h - face.height(size)) / 2.0;
            c.text_tight(
                x0 + col_w - pad - face.width_tight(size, &key),
                tyr,
                &key,
                face,
                size,
                ink,
            );
            let mut row_cells = Vec::new();
            for j in 0..n_data {
                let code = book.draw(rng);
                c.text(
                    x0 + col_w * (j + 1) as f64 + pad,
                    tyr,
                    &code,
                    face,
                    size,
                    ink,
                );
                row_cells.push(Cell {
                    key: key.clone(),
                    code,
                    strip: Rect::new(x0, ry, x0 + col_w * (j + 2) as f64, ry + row_h),
                    block: b,
                    row: r,
                });
            }
            cells.push(row_cells);
        }
        // Grid lines: rows, then columns.
        for r in 0..=rows + 1 {
            let ly = y + row_h * r as f64;
            c.fill_rect(Rect::new(x0, ly, x0 + table_w, ly + 1.0), line_c);
        }
        for j in 0..=n_data + 1 {
            let lx = (x0 + col_w * j as f64).min(x0 + table_w - 1.0);
            c.fill_rect(
                Rect::new(lx, y, lx + 1.0, y + row_h * (rows + 1) as f64),
                line_c,
            );
        }
    }

    let row = &cells[rng.below(cells.len() as u64) as usize];
    let j = if !small && rng.chance(0.5) {
        0
    } else {
        rng.below(n_data as u64) as usize
    };
    let t = &row[j];
    let header = headers[j];
    let question = fill(
        rng.pick_str(QUESTIONS),
        &[
            ("key", &t.key),
            ("header", header),
            ("ordinal", ORDINALS[j]),
        ],
    );
    let n = j as u32 + 2;
    let s = t.strip;
    // The crop keeps context — columns right of the target and rows above and below, up to the
    // table's edges — so the result is at least ~25 cap heights each way: the OCR scales small
    // images up before detecting text and would otherwise split the key into word fragments.
    let m = ((25.0 * cap / col_w).ceil() as u32).clamp(n, n_data as u32 + 1);
    let wide = Rect::new(s.x0, s.y0, s.x0 + col_w * m as f64, s.y1);
    let want_h = (25.0 * cap).max(plan::MIN_RESULT_SHORT / zoom_factor(&wide, cap));
    let (top, bottom) = (y, (y + row_h * (rows + 1) as f64).min(h as f64));
    let ch = want_h.max(s.height()).min(bottom - top);
    let y0 = (s.center().y - ch / 2.0).clamp(top, bottom - ch).floor();
    let crop = Rect::new(wide.x0, y0, wide.x1, (y0 + ch).ceil().min(bottom.floor()));
    let f = zoom_factor(&crop, cap);
    let mut program = vec![plan::crop(crop), plan::mark(&s, w, h)];
    if n > 2 {
        program.push(Op::Mask {
            region: Rect::new(
                s.x0 + col_w,
                crop.y0,
                s.x0 + col_w * (n - 1) as f64,
                crop.y1,
            ),
            color: Color(bg),
        });
        let mut order = vec![0, n - 1];
        order.extend(1..n - 1);
        order.extend(n..m);
        program.push(Op::Jigsaw {
            rows: 1,
            cols: m,
            order,
        });
    }
    program.push(plan::zoom(f));
    let side = if blocks == 1 {
        "the table".to_string()
    } else {
        format!("the {} table", if t.block == 0 { "left" } else { "right" })
    };
    let moves = if n > 2 {
        format!(
            "mask the {} columns in between and move the {header} cell next to the key with a 1x{m} tile permutation, so the code directly follows \"{}\"; then zoom x{f}",
            n - 2,
            t.key
        )
    } else {
        format!("the {header} column already follows the key; zoom x{f}")
    };
    let reasoning = format!(
        "The question asks for the {header} code of the row \"{key}\". That row is row {r} of {side}; {header} is data column {col}, so the answer is the cell at the right end of the strip {strip}. {legible} Crop the row from the key cell to the {header} cell, box it, {moves} so the text is about {big:.0} px tall.",
        key = t.key,
        r = t.row + 1,
        col = j + 1,
        strip = fmt_box(&s),
        legible = legibility(cap, w, h),
        big = cap * f,
    );
    let meta = json!({
        "header": header,
        "column": j + 1,
        "row": t.row + 1,
        "table": t.block + 1,
        "tables": blocks,
        "columns": n_data,
        "rows": rows,
        "face": face,
        "cell": Rect::new(s.x1 - col_w, s.y0, s.x1, s.y1),
    });
    Built {
        canvas: c,
        question,
        answer: t.code.clone(),
        format: AnswerFormat::Code,
        gold_region: s,
        gold_program: program,
        reasoning,
        answer_cap: cap,
        meta,
        objects: Vec::new(),
    }
}
