//! Chart: a dashboard of bar, line and scatter panels whose data points carry small value
//! annotations `Name: 42.7`. The question quotes the name and adds a cue (tallest bar, orange
//! series, ...); the answer is the number. The gold edit dims everything but the bar or point
//! and its annotation, then crops and zooms the annotation.

use super::{fill, paper, Built};
use crate::codes::{decimal, CHART_NAMES, CHART_TITLES, COLOURS, ORDINALS, SERIES};
use crate::draw::{expand, overlaps, Canvas, Face};
use crate::plan::{self, canvas_size, fmt_box, legibility, zoom_factor};
use crate::rng::Rng;
use crate::AnswerFormat;
use etchr_ops::program::HighlightMode;
use etchr_ops::{Op, Rect};
use serde_json::json;

const QUESTIONS: &[&str] = &[
    r#"What number is annotated at "{key}" ({cue}) in the {title} chart?"#,
    r#"In the {title} chart, read the value labelled "{key}", {cue}. Answer with the number."#,
    r#"The {title} chart marks {cue} as "{key}". What number does its annotation show?"#,
    r#"Give the number written next to "{key}" ({cue}, {title} chart)."#,
];

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Bar,
    Line,
    Scatter,
}

/// An annotated data point: the candidate targets.
struct Point {
    name: String,
    value: f64,
    label: Rect,
    /// The bar, or the marker's box.
    mark: Rect,
    cue: String,
    kind: Kind,
    title: &'static str,
}

struct Style {
    face: Face,
    size: f64,
    pad: f64,
}

impl Style {
    fn label_size(&self, text: &str) -> (f64, f64) {
        (
            self.face.width(self.size, text) + 2.0 * self.pad,
            self.face.height(self.size) + 2.0 * self.pad,
        )
    }
}

pub fn build(rng: &mut Rng, small: bool) -> Built {
    let (w, h) = canvas_size(
        rng,
        plan::min_long_side(small),
        4000,
        &[4.0 / 3.0, 1.5, 16.0 / 9.0],
    );
    let long = w.max(h) as f64;
    let mut c = Canvas::new(w, h, paper(rng));
    let face = *rng.pick(&Face::ALL);
    let cap = plan::answer_cap(rng, small, long);
    let st = Style {
        face,
        size: face.size_for_cap(cap),
        pad: (face.size_for_cap(cap) * 0.3).round().max(2.0),
    };
    let (slot, _) = st.label_size("Sanderling: 99.9");
    let slot = slot * 1.1;
    // As many panels as leave room for at least four annotated bars each.
    let margin = long * 0.02;
    let min_panel_w = 4.0 * slot + 8.0 * st.size + margin;
    let max_cols = ((w as f64 - margin) / min_panel_w).floor().clamp(1.0, 2.0) as usize;
    let pc = rng.int(1, max_cols as i64) as usize;
    let pr = if h as f64 > 1800.0 && rng.chance(0.6) {
        2
    } else {
        1
    };
    let pw = (w as f64 - margin * (pc as f64 + 1.0)) / pc as f64;
    let ph = (h as f64 - margin * (pr as f64 + 1.0)) / pr as f64;

    let mut names: Vec<&str> = CHART_NAMES.to_vec();
    rng.shuffle(&mut names);
    let mut names = names.into_iter().peekable();
    let titles = rng.sample(CHART_TITLES, pr * pc);
    let mut palette: Vec<(&str, [u8; 3])> = COLOURS.to_vec();
    let mut points = Vec::new();
    for (p, title) in titles.iter().enumerate() {
        let (px, py) = (
            margin + (p % pc) as f64 * (pw + margin),
            margin + (p / pc) as f64 * (ph + margin),
        );
        let panel = Rect::new(px, py, px + pw, py + ph);
        rng.shuffle(&mut palette);
        let kind = *rng.pick(&[Kind::Bar, Kind::Bar, Kind::Line, Kind::Scatter]);
        draw_panel(
            &mut c,
            rng,
            &st,
            panel,
            title,
            kind,
            slot,
            &palette,
            &mut names,
            &mut points,
        );
    }

    let t = &points[rng.below(points.len() as u64) as usize];
    let answer = decimal(t.value);
    let question = fill(
        rng.pick_str(QUESTIONS),
        &[("key", &t.name), ("cue", &t.cue), ("title", t.title)],
    );
    let lh = t.label.height();
    let focus = t.label.union(&Rect::new(
        t.mark.x0,
        t.mark.y0,
        t.mark.x1,
        t.mark.y1.min(t.mark.y0 + lh * 1.5),
    ));
    let crop = plan::context_crop(&focus, cap, w, h);
    let f = zoom_factor(&crop, cap);
    let program = vec![
        Op::Highlight {
            region: expand(t.label.union(&t.mark), 3.0, w, h),
            mode: HighlightMode::Dim,
            amount: Some(0.5),
        },
        plan::crop(crop),
        plan::zoom(f),
        plan::mark(&t.label, w, h),
    ];
    let what = match t.kind {
        Kind::Bar => "bar",
        _ => "point",
    };
    let reasoning = format!(
        "The question asks for the annotation \"{key}\", {cue}, in the {title} chart. That {what} is at {mark} and its label \"{key}: {answer}\" at {label}. {legible} Dim everything but the {what} and its label, then crop the label with a margin and zoom x{f} so the digits are about {big:.0} px tall, and box the label; the number follows the name.",
        key = t.name,
        cue = t.cue,
        title = t.title,
        mark = fmt_box(&t.mark),
        label = fmt_box(&t.label),
        legible = legibility(cap, w, h),
        big = cap * f,
    );
    let kind = match t.kind {
        Kind::Bar => "bar",
        Kind::Line => "line",
        Kind::Scatter => "scatter",
    };
    let meta =
        json!({"chart": kind, "cue": t.cue, "title": t.title, "panels": pr * pc, "face": face});
    Built {
        canvas: c,
        question,
        answer,
        format: AnswerFormat::Number,
        gold_region: t.label,
        gold_program: program,
        reasoning,
        answer_cap: cap,
        meta,
        objects: Vec::new(),
    }
}

#[allow(clippy::too_many_arguments)]
fn draw_panel<'a>(
    c: &mut Canvas,
    rng: &mut Rng,
    st: &Style,
    panel: Rect,
    title: &'static str,
    kind: Kind,
    slot: f64,
    palette: &[(&'static str, [u8; 3])],
    names: &mut std::iter::Peekable<impl Iterator<Item = &'a str>>,
    points: &mut Vec<Point>,
) {
    c.fill_rect(panel, [255, 255, 255]);
    c.stroke_rect(panel, (st.size / 12.0).max(1.0), [180, 180, 185]);
    let title_size = st.size * 1.5;
    c.text(
        panel.x0 + st.size,
        panel.y0 + st.size * 0.6,
        title,
        st.face,
        title_size,
        [30, 30, 40],
    );
    let tick = st.size;
    let (_, lh) = st.label_size("Ag: 9.9");
    let plot = Rect::new(
        panel.x0 + st.face.width(tick, "100") + tick * 1.5,
        panel.y0 + title_size * 2.2 + lh * 1.2,
        panel.x1 - tick * 1.5,
        panel.y1 - tick * 2.5,
    );
    // Axes and grid: values 0–100.
    let to_y = |v: f64| plot.y1 - v / 100.0 * plot.height();
    for v in (0..=100).step_by(20) {
        let y = to_y(v as f64);
        c.line((plot.x0, y), (plot.x1, y), 1.0, [225, 225, 230]);
        let label = v.to_string();
        let lw = st.face.width(tick, &label);
        c.text(
            plot.x0 - lw - tick * 0.5,
            y - st.face.height(tick) / 2.0,
            &label,
            st.face,
            tick,
            [90, 90, 90],
        );
    }
    let axis_w = (st.size / 10.0).max(1.0);
    c.line((plot.x0, plot.y0), (plot.x0, plot.y1), axis_w, [60, 60, 60]);
    c.line((plot.x0, plot.y1), (plot.x1, plot.y1), axis_w, [60, 60, 60]);
    let mut labels: Vec<Rect> = Vec::new();
    let value = |rng: &mut Rng| (rng.uniform(4.0, 96.0) * 10.0).round() / 10.0;
    match kind {
        Kind::Bar => {
            let k = ((plot.width() / slot).floor() as usize).clamp(3, 12);
            let step = plot.width() / k as f64;
            let (colour_name, colour) = palette[0];
            let mut vals: Vec<f64> = Vec::new();
            while vals.len() < k {
                let v = value(rng);
                if !vals.contains(&v) {
                    vals.push(v);
                }
            }
            let max = vals.iter().cloned().fold(f64::MIN, f64::max);
            let min = vals.iter().cloned().fold(f64::MAX, f64::min);
            for (i, &v) in vals.iter().enumerate() {
                let bw = step * rng.uniform(0.35, 0.6);
                let cx = plot.x0 + step * (i as f64 + 0.5);
                let bar = Rect::new(
                    (cx - bw / 2.0).round(),
                    to_y(v).round(),
                    (cx + bw / 2.0).round(),
                    plot.y1.round(),
                );
                c.fill_rect(bar, colour);
                let Some(name) = names.next() else { continue };
                let text = format!("{name}: {}", decimal(v));
                let (lw, lh) = st.label_size(&text);
                let label = Rect::new(
                    (cx - lw / 2.0).round(),
                    (bar.y0 - lh - st.pad).round(),
                    (cx + lw / 2.0).round(),
                    (bar.y0 - st.pad).round(),
                );
                draw_label(c, st, label, &text, colour);
                let cue = if v == max {
                    format!("the tallest {colour_name} bar")
                } else if v == min {
                    format!("the shortest {colour_name} bar")
                } else {
                    format!("the {} bar from the left", ORDINALS[i])
                };
                points.push(Point {
                    name: name.to_string(),
                    value: v,
                    label,
                    mark: bar,
                    cue,
                    kind,
                    title,
                });
            }
        }
        Kind::Line | Kind::Scatter => {
            let series = rng.int(2, 3) as usize;
            let series_names = rng.sample(SERIES, series);
            let k = ((plot.width() / slot).floor() as usize).clamp(3, 8);
            let r = (st.size * 0.35).max(3.0);
            let mut all: Vec<(usize, f64, f64)> = Vec::new();
            for (s, &(_, colour)) in palette.iter().enumerate().take(series) {
                let n = if kind == Kind::Line {
                    k
                } else {
                    rng.int(k as i64, 2 * k as i64) as usize
                };
                let mut pts: Vec<(f64, f64)> = (0..n)
                    .map(|i| {
                        let x = if kind == Kind::Line {
                            plot.x0 + plot.width() * (i as f64 + 0.5) / n as f64
                        } else {
                            plot.x0 + plot.width() * rng.uniform(0.05, 0.95)
                        };
                        (x, value(rng))
                    })
                    .collect();
                if kind == Kind::Scatter {
                    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
                }
                if kind == Kind::Line {
                    for w2 in pts.windows(2) {
                        c.line(
                            (w2[0].0, to_y(w2[0].1)),
                            (w2[1].0, to_y(w2[1].1)),
                            (st.size / 6.0).max(2.0),
                            colour,
                        );
                    }
                }
                for &(x, v) in &pts {
                    c.fill_circle(x, to_y(v), r, colour);
                    all.push((s, x, v));
                }
            }
            // Legend, top right of the plot.
            let mut ly = panel.y0 + st.size * 0.6;
            for (s, nm) in series_names.iter().enumerate() {
                let lw = st.face.width(st.size, nm);
                let lx = panel.x1 - lw - st.size * 2.5;
                c.fill_rect(
                    Rect::new(
                        lx - st.size * 1.3,
                        ly + st.size * 0.3,
                        lx - st.size * 0.4,
                        ly + st.size * 1.0,
                    ),
                    palette[s].1,
                );
                c.text(lx, ly, nm, st.face, st.size, [60, 60, 60]);
                ly += st.face.height(st.size) * 1.1;
            }
            let markers: Vec<Rect> = all
                .iter()
                .map(|&(_, x, v)| Rect::new(x - r, to_y(v) - r, x + r, to_y(v) + r))
                .collect();
            let mut order: Vec<usize> = (0..all.len()).collect();
            rng.shuffle(&mut order);
            for i in order {
                let (s, x, v) = all[i];
                let Some(&name) = names.peek() else { break };
                let text = format!("{name}: {}", decimal(v));
                let (lw, lh) = st.label_size(&text);
                let y = to_y(v);
                let candidates = [
                    Rect::new(
                        x - lw / 2.0,
                        y - r - lh - st.pad,
                        x + lw / 2.0,
                        y - r - st.pad,
                    ),
                    Rect::new(
                        x - lw / 2.0,
                        y + r + st.pad,
                        x + lw / 2.0,
                        y + r + st.pad + lh,
                    ),
                    Rect::new(
                        x + r + st.pad,
                        y - lh / 2.0,
                        x + r + st.pad + lw,
                        y + lh / 2.0,
                    ),
                ];
                let Some(label) = candidates.into_iter().map(plan::whole).find(|l| {
                    l.x0 >= plot.x0
                        && l.x1 <= panel.x1
                        && l.y0 >= plot.y0 - lh
                        && l.y1 <= plot.y1
                        && !labels.iter().any(|o| overlaps(o, l))
                        && !markers.iter().any(|m| overlaps(m, l))
                }) else {
                    continue;
                };
                names.next();
                labels.push(label);
                let colour = palette[s].1;
                draw_label(c, st, label, &text, colour);
                let series_vals: Vec<f64> = all.iter().filter(|a| a.0 == s).map(|a| a.2).collect();
                let (cname, sname) = (palette[s].0, series_names[s]);
                let cue = if series_vals.iter().all(|&o| o <= v) {
                    format!("the highest point of the {cname} {sname} series")
                } else if series_vals.iter().all(|&o| o >= v) {
                    format!("the lowest point of the {cname} {sname} series")
                } else if kind == Kind::Line {
                    let pos = all.iter().filter(|a| a.0 == s && a.1 < x).count();
                    format!("the {} point of the {cname} {sname} series", ORDINALS[pos])
                } else {
                    format!("a point of the {cname} {sname} group")
                };
                points.push(Point {
                    name: name.to_string(),
                    value: v,
                    label,
                    mark: markers[i],
                    cue,
                    kind,
                    title,
                });
            }
        }
    }
}

/// A value annotation: white box, thin border in the series colour, dark text.
fn draw_label(c: &mut Canvas, st: &Style, r: Rect, text: &str, colour: [u8; 3]) {
    c.fill_rect(r, [255, 255, 255]);
    c.stroke_rect(r, (st.size / 14.0).max(1.0), colour);
    c.text(
        r.x0 + st.pad,
        r.y0 + st.pad,
        text,
        st.face,
        st.size,
        [25, 25, 25],
    );
}
