// Drives the ETCHR playground in headless Chromium. Run by tests/playground_e2e.rs, which starts
// `etchr serve` against a mock upstream and passes everything through the environment:
//   ETCHR_BASE       the server's base URL
//   ETCHR_CHROMIUM   the Chromium executable
//   ETCHR_IMAGE      the image to upload
//   ETCHR_OPS        an edit program (JSON) for the /v1/edit run
//   ETCHR_TRAJ_DIR   the trajectory log directory the server writes
//   ETCHR_EVAL_DIR   an `etchr eval` output directory (results.json + thumbs/)
//   ETCHR_SHOTS      where screenshots (and the downloaded trace) go
// Prints "PLAYGROUND E2E OK" on success; exits non-zero with a message otherwise.
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import path from 'node:path';

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const base = env('ETCHR_BASE');
const shots = env('ETCHR_SHOTS');
const trajDir = env('ETCHR_TRAJ_DIR');
const evalDir = env('ETCHR_EVAL_DIR');
fs.mkdirSync(shots, { recursive: true });

function check(cond, msg) {
  if (!cond) throw new Error(`assertion failed: ${msg}`);
}

const problems = [];
const browser = await chromium.launch({
  executablePath: env('ETCHR_CHROMIUM'),
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
let page;
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
  page = await context.newPage();
  page.setDefaultTimeout(60_000);
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console error: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));
  // Nothing may leave the page's origin (the page must work offline).
  page.on('request', (r) => {
    const u = r.url();
    if (!u.startsWith(base) && !u.startsWith('data:') && !u.startsWith('blob:')) problems.push(`off-origin request: ${u}`);
  });

  // ---- the page loads, with its CSP
  const res = await page.goto(`${base}/`);
  check(res.status() === 200, `GET / is 200 (got ${res.status()})`);
  check((res.headers()['content-security-policy'] || '').includes("script-src 'self'"), 'the page has a CSP');
  await page.waitForSelector('html[data-ready="true"]');
  check((await page.title()) === 'ETCHR playground', 'the title');

  // ---- upload an image, ask, pick a strategy
  await page.setInputFiles('#image-file', env('ETCHR_IMAGE'));
  await page.waitForFunction(() => /\d+ × \d+/.test(document.querySelector('#image-info').textContent));
  const info = await page.textContent('#image-info');
  check(info.includes('2400 × 1600'), `the image's size is shown: ${info}`);
  await page.fill('#question', 'What is written on the tag of the pump?');
  await page.selectOption('#mode', 'reason');
  await page.selectOption('#strategy', 'evr');
  await page.fill('#max-steps', '1');
  await page.screenshot({ path: path.join(shots, '01-form.png'), fullPage: true });

  // ---- run it through /v1/reason and check every step renders
  await page.click('#run-btn');
  await page.waitForFunction(() => /^Done/.test(document.querySelector('#status').textContent) || document.querySelector('#status').classList.contains('error'));
  const status = await page.textContent('#status');
  check(status.startsWith('Done'), `the run succeeded: ${status}`);
  const kinds = await page.$$eval('#result .step', (s) => s.map((n) => n.dataset.kind));
  check(JSON.stringify(kinds) === JSON.stringify(['edit', 'verify', 'reason']), `evr's steps: ${kinds}`);
  check((await page.textContent('#result .answer-text')) === 'PUMP 7', 'the answer is shown');
  // The edited image came back (return_images) and decoded.
  await page.waitForFunction(() => {
    const img = document.querySelector('#result .step[data-kind="edit"] img.edited');
    return img && img.complete && img.naturalWidth > 0;
  });
  // The program is drawn over the original on a canvas, and the canvas is not blank.
  await page.waitForSelector('#result .step[data-kind="edit"] canvas.overlay[data-drawn="true"]');
  const distinct = await page.$eval('#result canvas.overlay', (c) => {
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    const seen = new Set();
    for (let i = 0; i < d.length; i += 4 * 97) seen.add(`${d[i]},${d[i + 1]},${d[i + 2]}`);
    return seen.size;
  });
  check(distinct > 50, `the overlay shows the image (${distinct} colours sampled)`);
  const texts = await page.$$eval('#result .upstream-text', (s) => s.map((n) => n.textContent));
  check(texts.length === 2, `two upstream replies shown: ${texts.length}`);
  check(texts[0].includes('\\boxed{1}'), `the verification reply: ${texts[0]}`);
  check(texts[1].includes('PUMP 7'), `the reasoning reply: ${texts[1]}`);
  const programJson = await page.textContent('#result .program-json');
  check(JSON.parse(programJson)[0].op === 'crop', 'the program JSON is shown');
  check(await page.isVisible('#result .timings'), 'the timing bar is shown');
  check(await page.isVisible('#result .step[data-kind="verify"] .badge.ok'), 'the verdict is shown');
  await page.screenshot({ path: path.join(shots, '02-reason-trace.png'), fullPage: true });

  // ---- download the trace
  const [dl] = await Promise.all([page.waitForEvent('download'), page.click('#download-trace')]);
  check(/^etchr-trace-.*\.json$/.test(dl.suggestedFilename()), `the trace's file name: ${dl.suggestedFilename()}`);
  await dl.saveAs(path.join(shots, 'trace.json'));
  const trace = JSON.parse(fs.readFileSync(path.join(shots, 'trace.json'), 'utf8'));
  check(trace.answer === 'PUMP 7' && trace.steps.length === 3, 'the downloaded trace is the response');

  // ---- plan an edit through /v1/edit with an explicit program
  await page.selectOption('#mode', 'edit');
  await page.click('#ops-details summary');
  await page.fill('#ops', fs.readFileSync(env('ETCHR_OPS'), 'utf8'));
  await page.click('#run-btn');
  await page.waitForFunction(() => /^Done/.test(document.querySelector('#status').textContent) || document.querySelector('#status').classList.contains('error'));
  const editStatus = await page.textContent('#status');
  check(editStatus.startsWith('Done'), `the edit succeeded: ${editStatus}`);
  await page.waitForFunction(() => {
    const img = document.querySelector('#result .step[data-kind="edit"] img.edited');
    return img && img.complete && img.naturalWidth === 870 && img.naturalHeight === 570;
  });
  await page.waitForSelector('#result canvas.overlay[data-drawn="true"]');
  const editProgram = JSON.parse(await page.textContent('#result .program-json'));
  check(editProgram.length === 3 && editProgram[2].label === 'Pump 7', 'the repaired program is shown');
  await page.locator('#result .step').scrollIntoViewIfNeeded();
  await page.screenshot({ path: path.join(shots, '03-edit.png'), fullPage: true });

  // ---- pasting an image replaces the upload
  await page.evaluate(async () => {
    const c = document.createElement('canvas');
    c.width = 64;
    c.height = 48;
    c.getContext('2d').fillRect(8, 8, 20, 20);
    const blob = await new Promise((r) => c.toBlob(r, 'image/png'));
    const dt = new DataTransfer();
    dt.items.add(new File([blob], 'pasted.png', { type: 'image/png' }));
    document.dispatchEvent(new ClipboardEvent('paste', { clipboardData: dt, bubbles: true }));
  });
  await page.waitForFunction(() => document.querySelector('#image-info').textContent.includes('64 × 48'));

  // ---- the viewer: the trajectory log the server just wrote, with its images
  await page.click('#tab-viewer');
  const logFiles = [path.join(trajDir, 'trajectories.jsonl'), ...fs.readdirSync(path.join(trajDir, 'images')).map((f) => path.join(trajDir, 'images', f))];
  await page.setInputFiles('#viewer-files', logFiles);
  await page.waitForFunction(() => document.querySelector('#viewer-pos').textContent === '1 / 1');
  const vkinds = await page.$$eval('#viewer-body .step', (s) => s.map((n) => n.dataset.kind));
  check(JSON.stringify(vkinds) === JSON.stringify(['edit', 'verify', 'reason']), `the logged steps: ${vkinds}`);
  await page.waitForFunction(() => {
    const img = document.querySelector('#viewer-body .step[data-kind="edit"] img.edited');
    return img && img.complete && img.naturalWidth > 0 && img.src.startsWith('blob:');
  });
  await page.waitForSelector('#viewer-body canvas.overlay[data-drawn="true"]');
  check((await page.textContent('#viewer-body .answer-text')) === 'PUMP 7', 'the logged answer');
  check((await page.textContent('#viewer-info')).includes('trajectory log, 1 record,'), 'the log is recognised');
  await page.screenshot({ path: path.join(shots, '04-viewer-trajectory.png'), fullPage: true });

  // ---- the viewer: the trace downloaded above
  await page.setInputFiles('#viewer-files', path.join(shots, 'trace.json'));
  await page.waitForFunction(() => /trace\.json: trace, 1 record/.test(document.querySelector('#viewer-info').textContent));
  check((await page.$$eval('#viewer-body .step', (s) => s.length)) === 3, 'the downloaded trace reopens');
  await page.waitForFunction(() => {
    const img = document.querySelector('#viewer-body .step[data-kind="edit"] img.edited');
    return img && img.complete && img.naturalWidth > 0;
  });

  // ---- the viewer: an eval report, paging through failures
  await page.setInputFiles('#viewer-dir', evalDir);
  await page.waitForFunction(() => /eval report, 6 items/.test(document.querySelector('#viewer-info').textContent));
  check((await page.textContent('#viewer-pos')) === '1 / 6', 'all six items');
  await page.selectOption('#viewer-filter', 'fail:oracle');
  check((await page.textContent('#viewer-pos')) === '0 / 0', 'the oracle failed nothing');
  check(await page.isVisible('#viewer-body .empty'), 'an empty filter says so');
  await page.selectOption('#viewer-filter', 'fail:direct');
  check((await page.textContent('#viewer-pos')) === '1 / 6', 'direct failed every item');
  await page.click('#viewer-next');
  check((await page.textContent('#viewer-pos')) === '2 / 6', 'paging forward');
  await page.keyboard.press('ArrowRight');
  check((await page.textContent('#viewer-pos')) === '3 / 6', 'paging with the keyboard');
  check(await page.isVisible('#viewer-body .condition[data-condition="direct"].wrong'), 'direct is marked wrong');
  check(await page.isVisible('#viewer-body .condition[data-condition="oracle"].correct'), 'oracle is marked right');
  await page.waitForFunction(() => {
    const imgs = [...document.querySelectorAll('#viewer-body .thumbs img')];
    return imgs.length >= 2 && imgs.every((i) => i.complete && i.naturalWidth > 0);
  });
  await page.screenshot({ path: path.join(shots, '05-viewer-eval-failures.png'), fullPage: true });

  check(problems.length === 0, `no console errors, failed or off-origin requests:\n${problems.join('\n')}`);
  console.log('PLAYGROUND E2E OK');
} catch (e) {
  if (page) await page.screenshot({ path: path.join(shots, 'failure.png'), fullPage: true }).catch(() => {});
  console.error(e.stack || String(e));
  if (problems.length) console.error(problems.join('\n'));
  process.exitCode = 1;
} finally {
  await browser.close();
}
