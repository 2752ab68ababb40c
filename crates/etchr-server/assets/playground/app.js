// ETCHR playground and trace viewer. Plain JavaScript, no build step, no network access beyond
// this server's own API (the page is served with a same-origin-only Content-Security-Policy).
// Every piece of text that came from a model or a file is inserted with textContent, never as HTML.
'use strict';

(() => {
  const $ = (sel, root = document) => root.querySelector(sel);

  /** Creates an element: el('div', {class: 'x', dataset: {k: 'v'}}, child, 'text', ...). */
  function el(tag, attrs, ...kids) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') node.className = v;
      else if (k === 'text') node.textContent = v;
      else if (k === 'dataset') Object.assign(node.dataset, v);
      else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? '' : String(v));
    }
    for (const kid of kids.flat()) {
      if (kid === undefined || kid === null || kid === false) continue;
      node.append(kid instanceof Node ? kid : String(kid));
    }
    return node;
  }

  const fmtMs = (ms) => (typeof ms === 'number' && isFinite(ms) ? (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(1)} ms`) : '—');
  const fmtBytes = (n) => (n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`);
  const short = (s, n = 12) => (typeof s === 'string' && s.length > n ? s.slice(0, n) + '…' : s || '');
  const pretty = (v) => JSON.stringify(v, null, 2);

  function download(name, text) {
    const url = URL.createObjectURL(new Blob([text], { type: 'application/json' }));
    const a = el('a', { href: url, download: name });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }

  function loadImage(url) {
    return new Promise((resolve, reject) => {
      const img = new Image();
      img.onload = () => resolve(img);
      img.onerror = () => reject(new Error('the image could not be loaded'));
      img.src = url;
    });
  }

  // ---------------------------------------------------------------- tabs

  const tabs = [
    [$('#tab-run'), $('#panel-run')],
    [$('#tab-viewer'), $('#panel-viewer')],
  ];
  function selectTab(which) {
    for (const [tab, panel] of tabs) {
      const on = tab === which;
      tab.setAttribute('aria-selected', String(on));
      panel.hidden = !on;
    }
  }
  for (const [tab] of tabs) tab.addEventListener('click', () => selectTab(tab));

  // ---------------------------------------------------------------- the image

  /** The image to send: a data URL the server accepts, and its size. */
  const input = { dataUrl: null, width: 0, height: 0, name: '' };

  function readAsDataUrl(blob) {
    return new Promise((resolve, reject) => {
      const r = new FileReader();
      r.onload = () => resolve(r.result);
      r.onerror = () => reject(r.error);
      r.readAsDataURL(blob);
    });
  }

  async function setImage(file) {
    const status = $('#image-info');
    if (!file || !file.type.startsWith('image/')) {
      status.textContent = 'That is not an image.';
      return;
    }
    try {
      let url = await readAsDataUrl(file);
      const img = await loadImage(url);
      // The server reads PNG, JPEG and WebP; anything else the browser can show is converted.
      if (!/^image\/(png|jpeg|webp)$/.test(file.type)) {
        const c = el('canvas', { width: img.naturalWidth, height: img.naturalHeight });
        c.getContext('2d').drawImage(img, 0, 0);
        url = c.toDataURL('image/png');
      }
      Object.assign(input, { dataUrl: url, width: img.naturalWidth, height: img.naturalHeight, name: file.name || 'pasted image' });
      const prev = $('#image-preview');
      prev.src = url;
      prev.alt = input.name;
      prev.hidden = false;
      status.textContent = `${input.name} — ${input.width} × ${input.height}, ${fmtBytes(file.size)}`;
    } catch (e) {
      status.textContent = `Could not read the image: ${e.message}`;
    }
  }

  $('#image-file').addEventListener('change', (e) => setImage(e.target.files[0]));
  const drop = $('#drop');
  drop.addEventListener('dragover', (e) => {
    e.preventDefault();
    drop.classList.add('over');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    const f = [...(e.dataTransfer?.files || [])].find((f) => f.type.startsWith('image/'));
    if (f) setImage(f);
  });
  document.addEventListener('paste', (e) => {
    if ($('#panel-run').hidden) return;
    const item = [...(e.clipboardData?.items || [])].find((i) => i.kind === 'file' && i.type.startsWith('image/'));
    if (item) {
      e.preventDefault();
      setImage(item.getAsFile());
    }
  });

  // ---------------------------------------------------------------- running

  const mode = $('#mode');
  function syncMode() {
    const reason = mode.value === 'reason';
    for (const n of document.querySelectorAll('.reason-only')) n.hidden = !reason;
    $('#run-btn').textContent = reason ? 'Run' : 'Edit';
  }
  mode.addEventListener('change', syncMode);
  syncMode();

  let lastResult = null;

  function setStatus(text, isError) {
    const s = $('#status');
    s.textContent = text;
    s.classList.toggle('error', !!isError);
  }

  $('#run-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const isReason = mode.value === 'reason';
    const question = $('#question').value.trim();
    if (!input.dataUrl) return setStatus('Choose, drop or paste an image first.', true);
    if (isReason && !question) return setStatus('Type a question first.', true);
    let ops;
    const opsText = $('#ops').value.trim();
    if (opsText) {
      try {
        ops = JSON.parse(opsText);
      } catch (err) {
        $('#ops-details').open = true;
        return setStatus(`The edit program is not valid JSON: ${err.message}`, true);
      }
    }
    const body = { image: input.dataUrl };
    if (isReason) {
      body.question = question;
      body.return_images = true;
      const strategy = $('#strategy').value;
      if (strategy) body.strategy = strategy;
      const maxSteps = $('#max-steps').value;
      if (maxSteps !== '') body.max_steps = Number(maxSteps);
      const model = $('#model').value.trim();
      if (model) body.model = model;
    } else if (question) {
      body.question = question;
    }
    if (ops !== undefined) {
      body.ops = ops;
      body.coords = $('#coords').value;
    }
    const url = isReason ? '/v1/reason' : '/v1/edit';
    const button = $('#run-btn');
    button.disabled = true;
    $('#download-trace').disabled = true;
    setStatus(isReason ? 'Reasoning… (the upstream is thinking)' : 'Editing…');
    $('#result').replaceChildren();
    const started = performance.now();
    try {
      const headers = { 'content-type': 'application/json', accept: 'application/json' };
      // Servers with client keys ([security] api_keys) need one; it is never stored.
      const key = $('#api-key').value.trim();
      if (key) headers.authorization = `Bearer ${key}`;
      const res = await fetch(url, { method: 'POST', headers, body: JSON.stringify(body) });
      const text = await res.text();
      const wall = performance.now() - started;
      let json;
      try {
        json = JSON.parse(text);
      } catch {
        throw new Error(`HTTP ${res.status}: ${text.slice(0, 300)}`);
      }
      if (!res.ok) {
        const err = json.error || {};
        throw new Error(`HTTP ${res.status}${err.code ? ` (${err.code})` : ''}: ${err.message || text.slice(0, 300)}`);
      }
      const overhead = res.headers.get('x-etchr-overhead-ms');
      const requestId = res.headers.get('x-request-id');
      const original = { url: input.dataUrl, width: input.width, height: input.height };
      lastResult = { json, name: `etchr-${isReason ? 'trace' : 'edit'}-${json.id || requestId || Date.now()}.json` };
      const extra = { wall, overhead, requestId };
      if (isReason) renderTrace($('#result'), fromReasonResponse(json, original, question, extra));
      else renderTrace($('#result'), fromEditResponse(json, original, question, extra));
      $('#download-trace').disabled = false;
      setStatus(`Done in ${fmtMs(wall)}.`);
    } catch (err) {
      setStatus(err.message, true);
    } finally {
      button.disabled = false;
    }
  });

  $('#download-trace').addEventListener('click', () => {
    if (lastResult) download(lastResult.name, pretty(lastResult.json));
  });

  // ---------------------------------------------------------------- trace models
  // Every source (a /v1/reason response, a /v1/edit response, a trajectory record, a downloaded
  // trace) becomes one shape that renderTrace draws:
  // {title, question, answer, answerSource, finalText, strategy, planner, stopReason, forcedFinal,
  //  usage, timings, id, steps, original: {url, width, height}, viewUrl(edit) -> url|null, facts}

  function fromReasonResponse(r, original, question, extra = {}) {
    const images = Array.isArray(r.images) ? r.images : [];
    return {
      title: 'Reasoning trace',
      id: r.id,
      question,
      answer: r.answer,
      answerSource: r.answer_source,
      finalText: r.final_text,
      strategy: r.strategy,
      planner: r.planner,
      stopReason: r.stop_reason,
      forcedFinal: r.forced_final,
      usage: r.usage,
      timings: r.timings_ms,
      steps: r.steps || [],
      original,
      viewUrl: (edit) => images[edit.view - 1] || null,
      facts: { 'round trip': extra.wall !== undefined ? fmtMs(extra.wall) : undefined, 'sidecar overhead': extra.overhead ? `${extra.overhead} ms` : undefined },
    };
  }

  function fromEditResponse(r, original, question, extra = {}) {
    const t = r.timings_ms || {};
    const step = {
      index: 0,
      kind: 'edit',
      edit: {
        view: 1,
        planner: question && t.plan !== undefined ? 'editing model' : 'explicit_ops',
        program: r.ops || [],
        repairs: r.repairs || [],
        image: { width: r.width, height: r.height },
        transform: r.transform,
        plan_ms: t.plan,
        render_ms: t.render,
      },
    };
    const views = Array.isArray(r.views) ? r.views : null;
    return {
      title: 'Edit',
      question,
      steps: [step],
      original,
      viewUrl: () => r.image || null,
      extraViews: views && views.length > 1 ? views : null,
      editTimings: t,
      facts: { 'round trip': extra.wall !== undefined ? fmtMs(extra.wall) : undefined, 'request id': extra.requestId || undefined },
    };
  }

  // ---------------------------------------------------------------- drawing programs

  /** Maps a point of a view back to the original through a serialized Transform. */
  function toOriginal(transform, p) {
    const steps = (transform && transform.steps) || [];
    let [x, y] = p;
    for (let i = steps.length - 1; i >= 0; i--) {
      const s = steps[i];
      if (s.kind === 'affine' && Array.isArray(s.matrix)) {
        const [a, b, c, d, e, f] = s.matrix;
        [x, y] = [a * x + b * y + c, d * x + e * y + f];
      }
    }
    return [x, y];
  }

  const OP_COLORS = { crop: '#ffd400', highlight: '#00d1ff', mask: '#222222', enhance: '#b66dff', grid: '#00e0c0', tiles: '#00e0c0', jigsaw: '#ff9f1a', jigsaw_solve: '#ff9f1a' };

  /** Draws `program` (original pixels) over the original, scaled by `s`, plus the view's footprint. */
  function drawProgram(ctx, s, program, transform, view, size) {
    const [W, H] = size;
    let region = [0, 0, W, H];
    ctx.lineJoin = 'round';
    ctx.font = '600 12px system-ui, sans-serif';
    const label = (text, x, y, color) => {
      const w = ctx.measureText(text).width + 8;
      const lx = Math.max(0, Math.min(x, ctx.canvas.width - w));
      const ly = Math.max(0, y - 16);
      ctx.fillStyle = 'rgba(0,0,0,0.7)';
      ctx.fillRect(lx, ly, w, 16);
      ctx.fillStyle = color;
      ctx.fillText(text, lx + 4, ly + 12);
    };
    const rect = (b, color, dash, name) => {
      const [x0, y0, x1, y1] = b.map((v) => v * s);
      ctx.save();
      ctx.setLineDash(dash || []);
      ctx.strokeStyle = 'rgba(0,0,0,0.6)';
      ctx.lineWidth = 4;
      ctx.strokeRect(x0, y0, x1 - x0, y1 - y0);
      ctx.strokeStyle = color;
      ctx.lineWidth = 2;
      ctx.strokeRect(x0, y0, x1 - x0, y1 - y0);
      ctx.restore();
      if (name) label(name, x0, y0, color);
    };
    const line = (a, b, color, dash) => {
      ctx.save();
      ctx.setLineDash(dash || []);
      ctx.strokeStyle = color;
      ctx.lineWidth = 2;
      ctx.beginPath();
      ctx.moveTo(a[0] * s, a[1] * s);
      ctx.lineTo(b[0] * s, b[1] * s);
      ctx.stroke();
      ctx.restore();
    };
    const dot = (p, color, r = 5) => {
      ctx.beginPath();
      ctx.arc(p[0] * s, p[1] * s, r, 0, Math.PI * 2);
      ctx.fillStyle = color;
      ctx.fill();
      ctx.strokeStyle = '#fff';
      ctx.lineWidth = 1.5;
      ctx.stroke();
    };
    const gridOver = (b, rows, cols, color) => {
      const [x0, y0, x1, y1] = b;
      for (let r = 1; r < rows; r++) line([x0, y0 + ((y1 - y0) * r) / rows], [x1, y0 + ((y1 - y0) * r) / rows], color, [4, 3]);
      for (let c = 1; c < cols; c++) line([x0 + ((x1 - x0) * c) / cols, y0], [x0 + ((x1 - x0) * c) / cols, y1], color, [4, 3]);
    };
    (program || []).forEach((op, i) => {
      const n = `${i}:${op.op}`;
      const color = typeof op.color === 'string' ? op.color : OP_COLORS[op.op] || '#ff3b30';
      switch (op.op) {
        case 'crop':
          rect(op.box, OP_COLORS.crop, [8, 5], n);
          region = op.box.slice();
          break;
        case 'box':
          rect(op.box, color, null, op.label ? `${n} ${op.label}` : n);
          break;
        case 'ellipse': {
          const [x0, y0, x1, y1] = op.box.map((v) => v * s);
          ctx.beginPath();
          ctx.ellipse((x0 + x1) / 2, (y0 + y1) / 2, Math.abs(x1 - x0) / 2, Math.abs(y1 - y0) / 2, 0, 0, Math.PI * 2);
          ctx.strokeStyle = color;
          ctx.lineWidth = 2;
          ctx.stroke();
          label(n, x0, y0, color);
          break;
        }
        case 'highlight':
        case 'mask':
          rect(op.box, op.op === 'mask' ? '#ffffff' : OP_COLORS.highlight, [3, 3], n);
          break;
        case 'enhance':
          if (op.box) rect(op.box, OP_COLORS.enhance, [2, 4], `${n} ${op.mode}`);
          break;
        case 'line':
        case 'arrow':
        case 'measure':
        case 'path': {
          line(op.from, op.to, color, op.op === 'path' ? [6, 4] : null);
          dot(op.from, color, 3);
          dot(op.to, color, op.op === 'arrow' ? 5 : 3);
          label(n, op.from[0] * s, op.from[1] * s, color);
          break;
        }
        case 'polyline': {
          const pts = op.points || [];
          for (let k = 1; k < pts.length; k++) line(pts[k - 1], pts[k], color);
          if (op.closed && pts.length > 2) line(pts[pts.length - 1], pts[0], color);
          if (pts.length) label(n, pts[0][0] * s, pts[0][1] * s, color);
          break;
        }
        case 'point':
        case 'flood':
          dot(op.at || op.from, color);
          label(n, (op.at || op.from)[0] * s + 6, (op.at || op.from)[1] * s, color);
          break;
        case 'text':
          dot(op.at, color, 3);
          label(`${n} “${short(op.text, 24)}”`, op.at[0] * s, op.at[1] * s + 16, color);
          break;
        case 'grid':
        case 'tiles':
        case 'jigsaw':
        case 'jigsaw_solve':
          gridOver(region, op.rows, op.cols, OP_COLORS[op.op]);
          label(n, region[0] * s, region[1] * s + 16, OP_COLORS[op.op]);
          break;
        default:
          break; // zoom, rotate, flip: no geometry on the original
      }
    });
    // The view's footprint on the original, from its provenance (exact, rotations included).
    if (view && view.width && view.height && transform && (transform.steps || []).length) {
      const corners = [[0, 0], [view.width, 0], [view.width, view.height], [0, view.height]].map((p) => toOriginal(transform, p));
      ctx.save();
      ctx.setLineDash([2, 3]);
      ctx.strokeStyle = '#00e5ff';
      ctx.lineWidth = 1.5;
      ctx.beginPath();
      corners.forEach(([x, y], k) => (k ? ctx.lineTo(x * s, y * s) : ctx.moveTo(x * s, y * s)));
      ctx.closePath();
      ctx.stroke();
      ctx.restore();
    }
  }

  /** A canvas with the original image (or a grey stand-in) and the program drawn over it. */
  function overlayCanvas(original, edit) {
    const W = original.width || (edit.image && edit.image.width) || 640;
    const H = original.height || (edit.image && edit.image.height) || 480;
    const s = Math.min(560 / W, 400 / H);
    const canvas = el('canvas', { class: 'overlay', width: Math.max(1, Math.round(W * s)), height: Math.max(1, Math.round(H * s)) });
    canvas.setAttribute('aria-label', `the original with program ${edit.program_text || ''} drawn over it`);
    const ctx = canvas.getContext('2d');
    const draw = (img) => {
      if (img) ctx.drawImage(img, 0, 0, canvas.width, canvas.height);
      else {
        ctx.fillStyle = '#c9ced6';
        ctx.fillRect(0, 0, canvas.width, canvas.height);
        ctx.fillStyle = '#5b6472';
        ctx.font = '13px system-ui, sans-serif';
        ctx.fillText('original image not available', 10, 20);
      }
      drawProgram(ctx, s, edit.program, edit.transform, edit.image, [W, H]);
      canvas.dataset.drawn = 'true';
    };
    if (original.url) loadImage(original.url).then(draw, () => draw(null));
    else draw(null);
    return canvas;
  }

  // ---------------------------------------------------------------- rendering traces

  function summaryGrid(pairs) {
    return el('div', { class: 'summary' }, Object.entries(pairs)
      .filter(([, v]) => v !== undefined && v !== null && v !== '')
      .map(([k, v]) => el('div', {}, el('b', { text: k }), String(v))));
  }

  function timingBar(t) {
    if (!t || !t.total) return null;
    const other = Math.max(0, t.total - (t.upstream || 0) - (t.plan || 0) - (t.render || 0));
    const parts = [['upstream', t.upstream || 0], ['plan', t.plan || 0], ['render', t.render || 0], ['other', other]];
    const bar = el('div', { class: 'timings', role: 'img', 'aria-label': 'where the time went' });
    for (const [k, v] of parts) {
      if (v <= 0) continue;
      const span = el('span', { class: `t-${k}`, title: `${k}: ${fmtMs(v)}` });
      span.style.width = `${(100 * v) / t.total}%`;
      bar.append(span);
    }
    const legend = el('div', { class: 'legend' }, parts.map(([k, v]) => el('span', {}, el('i', { class: `t-${k}` }), `${k} ${fmtMs(v)}`)));
    return [bar, legend];
  }

  function stepCard(step, t) {
    const kind = step.kind || 'step';
    const card = el('article', { class: 'step', dataset: { kind, index: step.index } });
    const head = el('header', {}, el('h3', { text: `Step ${step.index}` }), el('span', { class: 'kind', text: kind }));
    if (step.helps === true) head.append(el('span', { class: 'badge ok', text: 'edit helps: used' }));
    if (step.helps === false) head.append(el('span', { class: 'badge bad', text: 'edit does not help: dropped' }));
    card.append(head);
    if (step.error) card.append(el('p', { class: 'error step-error', text: step.error }));

    const e = step.edit;
    if (e) {
      const viewUrl = t.viewUrl ? t.viewUrl(e) : null;
      const size = e.image && e.image.width ? `${e.image.width} × ${e.image.height}` : '';
      const edited = viewUrl
        ? el('img', { class: 'edited', src: viewUrl, alt: `edited view ${e.view}` })
        : el('p', { class: 'muted', text: 'edited image not available (ask with return_images, or open the log folder with its images/)' });
      const views = el('div', { class: 'views' },
        el('figure', {}, overlayCanvas(t.original || {}, e), el('figcaption', { text: 'the original, with the program drawn over it (dotted: the view\u2019s footprint)' })),
        el('figure', {}, edited, el('figcaption', { text: `view ${e.view}${size ? ` — ${size}` : ''}` })));
      if (t.extraViews) {
        for (const [k, v] of t.extraViews.entries()) {
          if (k === 0) continue;
          views.append(el('figure', {}, el('img', { class: 'edited', src: v.image, alt: `view ${k + 1}` }), el('figcaption', { text: `view ${k + 1} — ${v.width} × ${v.height}` })));
        }
      }
      card.append(views);
      card.append(el('div', { class: 'kv' },
        el('span', { text: `planner: ${e.planner || '—'}` }),
        e.plan_ms !== undefined ? el('span', { text: `plan ${fmtMs(e.plan_ms)}` }) : null,
        e.render_ms !== undefined ? el('span', { text: `render ${fmtMs(e.render_ms)}` }) : null,
        e.image && e.image.sha256 ? el('span', { title: e.image.sha256, text: `sha256 ${short(e.image.sha256)}` }) : null,
        e.image && e.image.bytes ? el('span', { text: fmtBytes(e.image.bytes) }) : null));
      if (e.program_text) card.append(el('pre', { class: 'program-text', text: e.program_text }));
      card.append(el('details', { class: 'program', open: true }, el('summary', { text: `program JSON (${(e.program || []).length} ops, original pixels)` }), el('pre', { class: 'program-json', text: pretty(e.program) })));
      if (e.repairs && e.repairs.length) card.append(el('details', {}, el('summary', { text: `${e.repairs.length} repairs` }), el('ul', {}, e.repairs.map((r) => el('li', { text: r })))));
      if (e.context) card.append(el('details', {}, el('summary', { text: 'context the planner was given' }), el('pre', { text: e.context })));
    }

    const c = step.call;
    if (c) {
      const u = c.usage || {};
      const sent = (c.request && c.request.images) || [];
      card.append(el('div', { class: 'kv' },
        el('span', { text: `upstream: ${c.upstream || '—'}` }),
        el('span', { text: `model: ${c.served_model || (c.request && c.request.model) || '—'}` }),
        el('span', { text: fmtMs(c.ms) }),
        c.attempts > 1 ? el('span', { text: `${c.attempts} attempts` }) : null,
        el('span', { text: `tokens ${u.prompt_tokens ?? 0} → ${u.completion_tokens ?? 0}` }),
        el('span', { text: `images sent: ${sent.map((i) => (i.view === null || i.view === undefined ? 'extra' : i.view === 0 ? 'original' : `view ${i.view}`) + (i.sent_width ? ` ${i.sent_width}×${i.sent_height}` : '')).join(', ') || 'none'}` }),
        c.finish_reason ? el('span', { text: `finish: ${c.finish_reason}` }) : null));
      if (c.reasoning) card.append(el('details', {}, el('summary', { text: 'reasoning' }), el('pre', { text: c.reasoning })));
      card.append(el('pre', { class: 'upstream-text', text: c.reply || '(empty reply)' }));
      if (c.tool_calls && c.tool_calls.length) {
        card.append(el('details', { open: true }, el('summary', { text: 'tool calls' }),
          c.tool_calls.map((tc) => el('pre', { text: `${tc.name}(${tc.arguments})` }))));
      }
    }
    return card;
  }

  function renderTrace(container, t) {
    const out = [];
    const top = el('section', { class: 'card trace-summary' });
    top.append(el('h2', { text: t.title || 'Trace' }));
    if (t.question) top.append(el('p', {}, el('b', { text: 'Question: ' }), t.question));
    if (t.answer !== undefined) {
      top.append(el('p', { class: 'answer' }, el('span', { class: 'label', text: 'answer' }), el('span', { class: 'answer-text', text: t.answer || '(none)' })));
    }
    const u = t.usage || {};
    top.append(summaryGrid({
      strategy: t.strategy,
      planner: t.planner,
      'answer from': t.answerSource,
      'stop reason': t.stopReason,
      'forced final': t.forcedFinal === undefined ? undefined : t.forcedFinal ? 'yes' : 'no',
      steps: t.steps.length,
      tokens: u.total_tokens !== undefined ? `${u.prompt_tokens} + ${u.completion_tokens} = ${u.total_tokens}` : undefined,
      total: t.timings ? fmtMs(t.timings.total) : t.editTimings ? fmtMs(t.editTimings.total) : undefined,
      upstream: t.timings ? fmtMs(t.timings.upstream) : undefined,
      'sidecar overhead': t.timings ? fmtMs(t.timings.overhead) : undefined,
      decode: t.editTimings ? fmtMs(t.editTimings.decode) : undefined,
      render: t.editTimings ? fmtMs(t.editTimings.render) : undefined,
      encode: t.editTimings ? fmtMs(t.editTimings.encode) : undefined,
      id: t.id,
      ...(t.facts || {}),
    }));
    const bar = timingBar(t.timings);
    if (bar) top.append(...bar);
    if (t.finalText && t.finalText !== t.answer) top.append(el('details', {}, el('summary', { text: 'the reply the answer came from' }), el('pre', { text: t.finalText })));
    out.push(top);
    out.push(el('div', { class: 'steps' }, t.steps.map((s) => stepCard(s, t))));
    container.replaceChildren(...out);
  }

  // ---------------------------------------------------------------- the viewer

  const viewer = { kind: null, records: [], shown: [], pos: 0, files: new Map(), urls: new Map(), meta: null, summary: null, source: '' };

  /** A file's path relative to the folder it came from (`images/ab.png`), or its bare name. */
  function relPath(f) {
    const p = f.webkitRelativePath || f.name;
    const i = p.indexOf('/');
    return f.webkitRelativePath && i >= 0 ? p.slice(i + 1) : p;
  }

  /** An object URL for a path a log or report names, if the user opened that file. */
  function fileUrl(rel) {
    if (!rel) return null;
    let f = viewer.files.get(rel);
    if (!f) {
      // Fall back to a unique match on the path's tail (files picked without their folder).
      const tail = rel.split('/').pop();
      const hits = [...viewer.files.entries()].filter(([k]) => k === tail || k.endsWith('/' + rel) || k.endsWith('/' + tail));
      if (hits.length === 1) f = hits[0][1];
    }
    if (!f) return null;
    if (!viewer.urls.has(f)) viewer.urls.set(f, URL.createObjectURL(f));
    return viewer.urls.get(f);
  }

  async function openFiles(list) {
    const files = [...list];
    if (!files.length) return;
    for (const u of viewer.urls.values()) URL.revokeObjectURL(u);
    Object.assign(viewer, { kind: null, records: [], shown: [], pos: 0, files: new Map(), urls: new Map(), meta: null, summary: null, source: '' });
    const data = [];
    for (const f of files) {
      const rel = relPath(f);
      if (/\.(jsonl|json)$/i.test(f.name)) data.push(f);
      else viewer.files.set(rel, f);
    }
    const info = $('#viewer-info');
    // Prefer the log or report itself over stray JSON files in a folder.
    data.sort((a, b) => rank(a) - rank(b));
    let skipped = 0;
    for (const f of data) {
      const text = await f.text();
      if (/\.jsonl$/i.test(f.name)) {
        const recs = [];
        for (const line of text.split('\n')) {
          if (!line.trim()) continue;
          try {
            const r = JSON.parse(line);
            if (r && r.trace && Array.isArray(r.trace.steps)) recs.push(r);
            else skipped++;
          } catch {
            skipped++; // a torn tail line (a crash mid-append) or garbage
          }
        }
        if (recs.length) {
          Object.assign(viewer, { kind: 'trajectories', records: recs, source: f.name });
          break;
        }
        continue;
      }
      let v;
      try {
        v = JSON.parse(text);
      } catch (e) {
        info.textContent = `${f.name}: not JSON (${e.message})`;
        continue;
      }
      if (v && Array.isArray(v.items) && v.meta) {
        Object.assign(viewer, { kind: 'eval', records: v.items, meta: v.meta, summary: v.summary || [], source: f.name });
        break;
      }
      if (v && Array.isArray(v.steps)) {
        Object.assign(viewer, { kind: 'trace', records: [v], source: f.name });
        break;
      }
      if (v && v.version && v.trace) {
        Object.assign(viewer, { kind: 'trajectories', records: [v], source: f.name });
        break;
      }
      if (v && Array.isArray(v.ops) && v.image) {
        Object.assign(viewer, { kind: 'edit', records: [v], source: f.name });
        break;
      }
    }
    if (!viewer.kind) {
      info.textContent = 'No trajectory log (.jsonl), eval results.json or trace JSON among the files.';
      $('#viewer-controls').hidden = true;
      $('#viewer-body').replaceChildren();
      return;
    }
    const names = { trajectories: 'trajectory log', eval: 'eval report', trace: 'trace', edit: 'edit response' };
    const n = viewer.records.length;
    const noun = viewer.kind === 'eval' ? 'item' : 'record';
    info.textContent = `${viewer.source}: ${names[viewer.kind]}, ${n} ${noun}${n === 1 ? '' : 's'}` +
      (skipped ? `, ${skipped} unreadable lines skipped` : '') + (viewer.files.size ? `, ${viewer.files.size} images` : '');
    setupFilter();
    applyFilter();
  }

  function rank(f) {
    if (f.name === 'trajectories.jsonl' || f.name === 'results.json') return 0;
    return /\.jsonl$/i.test(f.name) ? 1 : 2;
  }

  function setupFilter() {
    const sel = $('#viewer-filter');
    const opts = [['all', 'all items']];
    if (viewer.kind === 'eval') {
      opts.push(['any-fail', 'failed under any condition']);
      for (const c of viewer.meta.conditions || []) opts.push([`fail:${c}`, `failed: ${c}`]);
      for (const c of viewer.meta.conditions || []) if (c !== 'direct') opts.push([`flip:${c}`, `${c} wrong, direct right`]);
      opts.push(['error', 'with errors']);
    }
    sel.replaceChildren(...opts.map(([v, t]) => el('option', { value: v, text: t })));
    $('#viewer-filter-label').hidden = viewer.kind !== 'eval';
    $('#viewer-controls').hidden = false;
  }

  function matches(rec) {
    const q = $('#viewer-search').value.trim().toLowerCase();
    if (q) {
      const hay = `${rec.id || ''} ${rec.question || ''} ${rec.family || ''}`.toLowerCase();
      if (!hay.includes(q)) return false;
    }
    if (viewer.kind !== 'eval') return true;
    const f = $('#viewer-filter').value;
    const res = rec.results || [];
    const of = (c) => res.find((r) => r.condition === c);
    if (f === 'any-fail') return res.some((r) => !r.correct);
    if (f === 'error') return res.some((r) => r.error);
    if (f.startsWith('fail:')) {
      const r = of(f.slice(5));
      return !!r && !r.correct;
    }
    if (f.startsWith('flip:')) {
      const r = of(f.slice(5));
      const d = of('direct');
      return !!r && !!d && !r.correct && d.correct;
    }
    return true;
  }

  function applyFilter() {
    viewer.shown = viewer.records.map((r, i) => [r, i]).filter(([r]) => matches(r)).map(([, i]) => i);
    viewer.pos = 0;
    show();
  }

  function show() {
    const body = $('#viewer-body');
    const n = viewer.shown.length;
    $('#viewer-prev').disabled = viewer.pos <= 0;
    $('#viewer-next').disabled = viewer.pos >= n - 1;
    if (!n) {
      $('#viewer-pos').textContent = '0 / 0';
      body.replaceChildren(el('p', { class: 'card muted empty', text: 'No records match.' }));
      if (viewer.kind === 'eval') body.prepend(evalSummary());
      return;
    }
    $('#viewer-pos').textContent = `${viewer.pos + 1} / ${n}`;
    const idx = viewer.shown[viewer.pos];
    const rec = viewer.records[idx];
    const holder = el('div', { class: 'record', dataset: { index: idx } });
    if (viewer.kind === 'trajectories') renderRecord(holder, rec);
    else if (viewer.kind === 'eval') {
      body.replaceChildren(evalSummary(), holder);
      renderEvalItem(holder, rec);
      return;
    } else if (viewer.kind === 'trace') renderTrace(holder, fromReasonResponse(rec, { url: null }, rec.question));
    else if (viewer.kind === 'edit') renderTrace(holder, fromEditResponse(rec, { url: null }, ''));
    body.replaceChildren(holder);
  }

  function renderRecord(holder, rec) {
    const tr = rec.trace;
    const o = tr.original || {};
    const t = fromReasonResponse(
      { ...tr, images: null, timings_ms: tr.timings_ms, answer_source: tr.answer_source, final_text: tr.final_text, stop_reason: tr.stop_reason, forced_final: tr.forced_final },
      { url: fileUrl(o.path || rec.original_image), width: o.width, height: o.height },
      rec.question || tr.question,
    );
    t.title = `Trajectory ${rec.id}`;
    t.viewUrl = (edit) => fileUrl(edit.image && edit.image.path);
    t.facts = {
      created: rec.created_unix_ms ? new Date(rec.created_unix_ms).toISOString().replace('T', ' ').slice(0, 19) + ' UTC' : undefined,
      model: tr.model || undefined,
      original: o.width ? `${o.width} × ${o.height}` : undefined,
    };
    renderTrace(holder, t);
  }

  function evalSummary() {
    const m = viewer.meta || {};
    const box = el('details', { class: 'card eval-summary' });
    box.append(el('summary', { text: `Eval: ${m.model || '?'} via ${m.provider || '?'} — ${m.items ?? viewer.records.length} items, strategy ${m.strategy || '?'}, started ${m.started || '?'}` }));
    const rows = (viewer.summary || []).map((s) => el('tr', {},
      el('td', { text: s.condition }),
      el('td', { text: s.overall ? `${s.overall.correct} / ${s.overall.n}` : '' }),
      el('td', { text: s.overall ? `${(100 * s.overall.pass_at_1).toFixed(1)} %` : '' }),
      el('td', { text: s.mcnemar ? `+${s.mcnemar.b} / −${s.mcnemar.c}, p=${s.mcnemar.p_value.toPrecision(3)}` : '—' }),
      el('td', { text: fmtMs(s.added_ms_mean) }),
      el('td', { text: String(s.errors ?? 0) })));
    box.append(el('table', { class: 'scores' },
      el('thead', {}, el('tr', {}, ['condition', 'correct', 'Pass@1', 'vs direct', 'added (mean)', 'errors'].map((h) => el('th', { text: h })))),
      el('tbody', {}, rows)));
    return box;
  }

  function renderEvalItem(holder, item) {
    const head = el('section', { class: 'card item-head' },
      el('h2', { text: `${item.id} — ${item.family}` }),
      el('p', {}, el('b', { text: 'Question: ' }), item.question),
      el('p', {}, el('b', { text: 'Gold: ' }), el('code', { class: 'gold', text: item.gold }),
        el('span', { class: 'muted', text: `  (${item.answer_format}${item.small_text ? ', small text' : ''}, ${item.width} × ${item.height})` })),
      el('p', {}, el('b', { text: 'Gold program: ' }), el('code', { text: item.gold_program })));
    const thumb = fileUrl(item.thumb);
    if (thumb) head.append(el('div', { class: 'thumbs' }, el('figure', {}, el('img', { src: thumb, alt: 'original' }), el('figcaption', { text: 'original' }))));
    const conds = el('div', { class: 'conditions' }, (item.results || []).map((r) => {
      const card = el('article', { class: `condition ${r.correct ? 'correct' : 'wrong'}`, dataset: { condition: r.condition } });
      card.append(el('h3', {}, r.condition, ' ', el('span', { class: `badge ${r.correct ? 'ok' : 'bad'}`, text: r.correct ? 'correct' : r.correct_loose ? 'wrong (loose match ok)' : 'wrong' })));
      card.append(el('p', {}, el('b', { text: 'Answer: ' }), el('code', { text: r.answer || '(none)' })));
      if (r.error) card.append(el('p', { class: 'error', text: r.error }));
      card.append(el('div', { class: 'kv' },
        el('span', { text: `${r.calls} calls` }),
        el('span', { text: `${r.images_sent} images` }),
        el('span', { text: `${(r.pixels_sent / 1e6).toFixed(2)} MP` }),
        el('span', { text: `upstream ${fmtMs(r.upstream_ms)}` }),
        el('span', { text: `added ${fmtMs(r.added_ms)}` }),
        r.edit_helps !== undefined ? el('span', { text: `edit helps: ${r.edit_helps}` }) : null,
        r.stop_reason ? el('span', { text: `stop: ${r.stop_reason}` }) : null));
      if (r.views && r.views.length) {
        card.append(el('div', { class: 'thumbs' }, r.views.map((v) => {
          const url = fileUrl(v.thumb);
          return el('figure', {}, url ? el('img', { src: url, alt: v.label }) : null, el('figcaption', { text: `${v.label} ${v.width}×${v.height}: ${v.program}` }));
        })));
      }
      card.append(el('pre', { class: 'upstream-text', text: r.reply || '(no reply)' }));
      if (r.notes && r.notes.length) card.append(el('ul', {}, r.notes.map((n) => el('li', { text: n }))));
      return card;
    }));
    holder.replaceChildren(head, conds);
  }

  function step(d) {
    const n = viewer.shown.length;
    const p = Math.max(0, Math.min(n - 1, viewer.pos + d));
    if (p !== viewer.pos) {
      viewer.pos = p;
      show();
    }
  }

  $('#viewer-files').addEventListener('change', (e) => openFiles(e.target.files));
  $('#viewer-dir').addEventListener('change', (e) => openFiles(e.target.files));
  $('#viewer-prev').addEventListener('click', () => step(-1));
  $('#viewer-next').addEventListener('click', () => step(1));
  $('#viewer-filter').addEventListener('change', applyFilter);
  $('#viewer-search').addEventListener('input', applyFilter);
  document.addEventListener('keydown', (e) => {
    if ($('#panel-viewer').hidden || !viewer.kind) return;
    if (/^(INPUT|TEXTAREA|SELECT)$/.test(document.activeElement?.tagName || '')) return;
    if (e.key === 'ArrowLeft' || e.key === 'k') step(-1);
    if (e.key === 'ArrowRight' || e.key === 'j') step(1);
  });

  // For tests and the curious: the page's state, read-only.
  window.etchrPlayground = { viewer, get lastResult() { return lastResult; } };
  document.documentElement.dataset.ready = 'true';
})();
