//! `report.html`: one self-contained page (inline CSS and a few lines of JS; thumbnails as
//! relative files next to it) to look through items and their failures.

use std::fmt::Write as _;

use etchr_data::Family;

use crate::results::{ConditionResult, ItemRecord, Results};

/// Escapes text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

const STYLE: &str = r#"
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
table.sum{border-collapse:collapse;margin:1em 0}
table.sum td,table.sum th{border:1px solid #ccc;padding:3px 8px;text-align:right}
table.sum td:first-child,table.sum th:first-child{text-align:left}
.bar{position:sticky;top:0;background:#fff;padding:.5em 0;border-bottom:1px solid #ccc;z-index:2}
.item{border:1px solid #ccc;border-radius:6px;margin:1em 0;padding:.6em}
.item h3{margin:.1em 0 .4em;font-size:15px}
.q{margin:.2em 0 .5em}
.conds{display:flex;flex-wrap:wrap;gap:.6em;align-items:flex-start}
.cond{border:2px solid #ccc;border-radius:5px;padding:.4em;max-width:560px}
.cond.pass{border-color:#2a2;background:#f2fbf2}
.cond.fail{border-color:#c22;background:#fdf2f2}
.cond h4{margin:0 0 .3em}
.ans{font-family:monospace;font-size:15px}
img{max-width:480px;border:1px solid #bbb;display:block;margin:.2em 0}
.views{display:flex;flex-wrap:wrap;gap:.3em}
.views figure{margin:0}
figcaption,.prog,.note{font-size:12px;color:#555;font-family:monospace;word-break:break-all;max-width:480px}
.err{color:#c22}
details pre{white-space:pre-wrap;font-size:12px;max-width:540px}
.hidden{display:none}
"#;

const SCRIPT: &str = r#"
function apply(){
  const fam=document.getElementById('fam').value;
  const mode=document.getElementById('mode').value;
  const text=document.getElementById('text').value.toLowerCase();
  let shown=0;
  for(const el of document.querySelectorAll('.item')){
    const fails=el.dataset.fail.split(' ').filter(x=>x);
    const passes=el.dataset.pass.split(' ').filter(x=>x);
    let ok=(fam===''||el.dataset.family===fam);
    if(mode==='any-fail')ok=ok&&fails.length>0;
    else if(mode==='gain')ok=ok&&fails.includes('direct')&&passes.includes('oracle');
    else if(mode.startsWith('fail:'))ok=ok&&fails.includes(mode.slice(5));
    else if(mode.startsWith('pass:'))ok=ok&&passes.includes(mode.slice(5));
    if(text)ok=ok&&el.textContent.toLowerCase().includes(text);
    el.classList.toggle('hidden',!ok);
    if(ok)shown++;
  }
  document.getElementById('count').textContent=shown+' shown';
}
document.addEventListener('DOMContentLoaded',()=>{
  for(const id of ['fam','mode','text'])document.getElementById(id).addEventListener('input',apply);
  apply();
});
"#;

fn summary_table(results: &Results, out: &mut String) {
    let fams: Vec<Family> = Family::ALL
        .into_iter()
        .filter(|f| results.items.iter().any(|i| i.family == *f))
        .collect();
    out.push_str("<table class=sum><tr><th>condition</th>");
    for f in &fams {
        let _ = write!(out, "<th>{}</th>", f.name());
    }
    out.push_str(
        "<th>overall</th><th>vs direct b / c, p</th><th>calls / item</th>\
         <th>Mpx / item</th><th>added ms (mean)</th><th>errors</th></tr>",
    );
    for s in &results.summary {
        let _ = write!(out, "<tr><td>{}</td>", s.condition);
        for f in &fams {
            let sc = s.families.get(f.name()).copied().unwrap_or_default();
            let _ = write!(
                out,
                "<td>{:.0} % ({}/{})</td>",
                100.0 * sc.pass_at_1,
                sc.correct,
                sc.n
            );
        }
        let m = s.mcnemar.map_or("–".to_string(), |m| {
            format!("{} / {}, p = {:.3}", m.b, m.c, m.p_value)
        });
        let _ = write!(
            out,
            "<td><b>{:.0} % ({}/{})</b></td><td>{}</td><td>{:.2}</td><td>{:.2}</td><td>{:.0}</td><td>{}</td></tr>",
            100.0 * s.overall.pass_at_1,
            s.overall.correct,
            s.overall.n,
            m,
            s.calls_per_item,
            s.pixels_per_item / 1e6,
            s.added_ms_mean,
            s.errors
        );
    }
    out.push_str("</table>");
}

fn filter_bar(results: &Results, out: &mut String) {
    out.push_str("<div class=bar>family <select id=fam><option value=''>all</option>");
    for f in Family::ALL {
        if results.items.iter().any(|i| i.family == f) {
            let _ = write!(out, "<option>{}</option>", f.name());
        }
    }
    out.push_str(
        "</select> show <select id=mode><option value=''>all items</option>\
         <option value='any-fail' selected>items with any failure</option>\
         <option value='gain'>direct fails, oracle passes</option>",
    );
    for c in &results.meta.conditions {
        let _ = write!(
            out,
            "<option value='fail:{c}'>{c} fails</option><option value='pass:{c}'>{c} passes</option>"
        );
    }
    out.push_str(
        "</select> search <input id=text size=24 placeholder='id, question, answer'> \
         <span id=count></span></div>",
    );
}

fn condition_card(r: &ConditionResult, out: &mut String) {
    let class = if r.correct { "pass" } else { "fail" };
    let _ = write!(
        out,
        "<div class='cond {class}'><h4>{} {}</h4><div class=ans>answer: {}</div>",
        r.condition,
        if r.correct { "✔" } else { "✘" },
        if r.answer.is_empty() {
            "<i>(none)</i>".to_string()
        } else {
            esc(&r.answer)
        }
    );
    if let Some(e) = &r.error {
        let _ = write!(out, "<div class=err>error: {}</div>", esc(e));
    }
    let _ = write!(
        out,
        "<div class=note>{} call(s), {} image(s), {:.2} Mpx, upstream {:.0} ms, added {:.0} ms",
        r.calls,
        r.images_sent,
        r.pixels_sent as f64 / 1e6,
        r.upstream_ms,
        r.added_ms
    );
    if let Some(h) = r.edit_helps {
        let _ = write!(
            out,
            ", verified: {}",
            if h { "helps" } else { "does not help" }
        );
    }
    if let Some(s) = &r.stop_reason {
        let _ = write!(out, ", stop: {}", esc(s));
    }
    out.push_str("</div>");
    for n in &r.notes {
        let _ = write!(out, "<div class=note>{}</div>", esc(n));
    }
    if !r.views.is_empty() {
        out.push_str("<div class=views>");
        for v in &r.views {
            out.push_str("<figure>");
            if let Some(t) = &v.thumb {
                let _ = write!(
                    out,
                    "<a href='{0}'><img loading=lazy src='{0}' alt='{1}'></a>",
                    esc(t),
                    esc(&v.label)
                );
            }
            let _ = write!(
                out,
                "<figcaption>{} ({}×{})<br>{}</figcaption></figure>",
                esc(&v.label),
                v.width,
                v.height,
                esc(&v.program)
            );
        }
        out.push_str("</div>");
    }
    if !r.reply.is_empty() {
        let _ = write!(
            out,
            "<details><summary>reply</summary><pre>{}</pre></details>",
            esc(&r.reply)
        );
    }
    out.push_str("</div>");
}

fn item_card(item: &ItemRecord, out: &mut String) {
    let names = |ok: bool| -> String {
        item.results
            .iter()
            .filter(|r| r.correct == ok)
            .map(|r| r.condition.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let _ = write!(
        out,
        "<div class=item data-family='{}' data-fail='{}' data-pass='{}'>\
         <h3>{} <small>({}, {}×{}, answer cap {:.1} px at 1024{})</small></h3>\
         <div class=q>{}</div><div class=ans>gold: {}</div>\
         <div class=prog>gold program: {}</div><div class=conds>",
        item.family,
        names(false),
        names(true),
        esc(&item.id),
        item.family,
        item.width,
        item.height,
        item.answer_text_px_at_1024,
        if item.small_text { ", small text" } else { "" },
        esc(&item.question),
        esc(&item.gold),
        esc(&item.gold_program),
    );
    if let Some(t) = &item.thumb {
        let _ = write!(
            out,
            "<div class=cond><h4>original</h4><a href='{0}'><img loading=lazy src='{0}' alt=original></a></div>",
            esc(t)
        );
    }
    for r in &item.results {
        condition_card(r, out);
    }
    out.push_str("</div></div>");
}

/// The whole page.
pub fn report(results: &Results) -> String {
    let m = &results.meta;
    let mut out = String::new();
    let _ = write!(
        out,
        "<!doctype html><html><head><meta charset=utf-8><title>etchr eval — {}</title>\
         <style>{STYLE}</style><script>{SCRIPT}</script></head><body>\
         <h1>etchr eval</h1><p>{} items from <code>{}</code> · upstream <code>{}</code> ({}, \
         model <code>{}</code>) · conditions {} · etchr strategy {} with planner {} · tiles \
         {g}×{g} at {} px · started {} UTC · {:.0} s</p>",
        esc(&m.items_dir),
        m.items,
        esc(&m.items_dir),
        esc(&m.upstream),
        esc(&m.provider),
        esc(if m.model.is_empty() {
            "(default)"
        } else {
            &m.model
        }),
        m.conditions
            .iter()
            .map(|c| c.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        esc(&m.strategy),
        esc(&m.planner),
        m.max_side,
        esc(&m.started),
        m.wall_s,
        g = m.tile_grid,
    );
    summary_table(results, &mut out);
    out.push_str(
        "<p>Pass@1 is a strict match (trimmed, case-sensitive). b: direct fails and the \
         condition passes; c: the reverse; p: exact two-sided McNemar.</p>",
    );
    filter_bar(results, &mut out);
    for item in &results.items {
        item_card(item, &mut out);
    }
    out.push_str("</body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            esc(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
