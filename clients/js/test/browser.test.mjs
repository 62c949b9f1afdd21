// @herald/client in a real headless Chromium, embedded in pages served from an origin
// that is neither the API's nor the gateway's. Run by scripts/js-test against a
// throw-away stack whose HERALD_CORS_ORIGINS allows PAGE_ORIGIN only.
//
// Environment (all required):
//   HERALD_API_URL, HERALD_GATEWAY_URL   the stack (http://127.0.0.1:<port>)
//   HERALD_USER_TOKEN                    user JWT (alice); HERALD_SERVICE_TOKEN: publish scope
//   PAGE_PORT                            port of this test's static server; the pages are
//                                        served as http://127.0.0.1:PAGE_PORT (allowed) and
//                                        http://localhost:PAGE_PORT (not allowed)
//   HERALD_STACK_DIR                     the stack's log folder (api.log, gateway.log)
//   HERALD_ARTIFACTS_DIR                 screenshots and figures
//   HERALD_CHROMIUM                      optional, default /usr/bin/chromium
//
// Steps (each depends on the one before):
//   1. the plain page's bell, from the allowed origin: exact count, the list, mark read,
//      a live publish;
//   2. the same page from a disallowed origin: no data reaches it (the browser blocks
//      the answers), and the services log no error or warning meanwhile;
//   3. eight tabs at once: all show the same count within 1 s of a publish, and the
//      gateway has exactly one stream open (herald_open_streams);
//   4. closing the leader tab while publishing: another tab takes over, every tab
//      shows each new notification exactly once, nothing is missing, one stream again;
//   5. the React (Vite) example app, screenshot with the dropdown open.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '..', '..', '..');

function required(name) {
  const v = process.env[name];
  if (!v || !v.trim()) {
    console.error(`browser.test.mjs: environment variable ${name} is required (see the header of this file)`);
    process.exit(2);
  }
  return v.trim();
}

const API = required('HERALD_API_URL').replace(/\/+$/, '');
const GATEWAY = required('HERALD_GATEWAY_URL').replace(/\/+$/, '');
const USER_TOKEN = required('HERALD_USER_TOKEN');
const SERVICE_TOKEN = required('HERALD_SERVICE_TOKEN');
const PAGE_PORT = Number(required('PAGE_PORT'));
const STACK_DIR = required('HERALD_STACK_DIR');
const ARTIFACTS = path.resolve(process.env.HERALD_ARTIFACTS_DIR || path.join(REPO, 'test-artifacts'));
const CHROMIUM = process.env.HERALD_CHROMIUM || '/usr/bin/chromium';
const ALLOWED = `http://127.0.0.1:${PAGE_PORT}`;
const DISALLOWED = `http://localhost:${PAGE_PORT}`;
const TABS = 8;
mkdirSync(ARTIFACTS, { recursive: true });
for (const f of ['eight-tabs.json', 'example-app.png', 'js-browser-console.log']) {
  rmSync(path.join(ARTIFACTS, f), { force: true }); // nothing stale from an earlier run
}

const RUN = Math.random().toString(36).slice(2, 7);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (...a) => console.log('  ·', ...a);
const show = (v) => (v instanceof Error ? `error: ${v.message}` : JSON.stringify(v));

async function eventually(what, probe, check, timeoutMs, intervalMs = 20) {
  const start = Date.now();
  let last;
  for (;;) {
    try {
      last = await probe();
      if (check(last)) return { value: last, ms: Date.now() - start };
    } catch (e) {
      last = e;
    }
    if (Date.now() - start >= timeoutMs) {
      throw new assert.AssertionError({ message: `${what}: not within ${timeoutMs} ms (last seen: ${show(last)})` });
    }
    await sleep(intervalMs);
  }
}

async function http(method, url, token, body) {
  const headers = { authorization: `Bearer ${token}`, accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method === 'POST') headers['idempotency-key'] = randomUUID();
  const res = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  assert.ok(res.ok, `${method} ${url} → ${res.status} ${text.slice(0, 300)}`);
  return text ? JSON.parse(text) : null;
}

const publish = (title) => http('POST', `${API}/v1/notifications`, SERVICE_TOKEN, {
  recipients: ['alice'], category: 'deploy', title, body: 'Sent by the @herald/client browser test.',
});
const counts = () => http('GET', `${API}/v1/me/notifications/counts`, USER_TOKEN);

/** The gateway's open streams, from its Prometheus metrics. */
async function openStreams() {
  const text = await (await fetch(`${GATEWAY}/metrics`)).text();
  const m = /^herald_open_streams (\d+)/m.exec(text);
  assert.ok(m, 'herald_open_streams is in the gateway metrics');
  return Number(m[1]);
}

/** New ERROR/WARN lines of the services since `marks` (line counts per log). */
function logMarks() {
  const marks = {};
  for (const svc of ['api', 'gateway', 'worker']) {
    try { marks[svc] = readFileSync(path.join(STACK_DIR, `${svc}.log`), 'utf8').split('\n').length; } catch { marks[svc] = 0; }
  }
  return marks;
}
function problemsSince(marks) {
  const found = [];
  for (const svc of Object.keys(marks)) {
    let lines = [];
    try { lines = readFileSync(path.join(STACK_DIR, `${svc}.log`), 'utf8').split('\n').slice(marks[svc] - 1); } catch { /* none */ }
    for (const l of lines) if (/\b(ERROR|WARN)\b/.test(l)) found.push(`${svc}: ${l}`);
  }
  return found;
}

// ------------------------------------------------------------------ the pages' server

const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8' };
const SERVED = ['/web/herald-bell.js', '/clients/js/examples/'];
const server = createServer((req, res) => {
  let p = decodeURIComponent(new URL(req.url, 'http://x').pathname);
  if (p.endsWith('/')) p += 'index.html';
  const file = path.join(REPO, p);
  if (!SERVED.some((s) => p.startsWith(s)) || !file.startsWith(REPO + path.sep) || p.includes('..')) {
    res.writeHead(404).end();
    return;
  }
  try {
    if (!statSync(file).isFile()) throw new Error('not a file');
    res.writeHead(200, { 'content-type': TYPES[path.extname(file)] || 'application/octet-stream', 'cache-control': 'no-store' });
    res.end(readFileSync(file));
  } catch {
    res.writeHead(404).end();
  }
});

const pagePath = (example) => `/clients/js/examples/${example}?api=${encodeURIComponent(API)}&stream=${encodeURIComponent(GATEWAY)}#token=${encodeURIComponent(USER_TOKEN)}`;

// ------------------------------------------------------------------ browser

let browser;
let context;
let broken = null;
const consoleLines = [];
const figures = {};

async function newTab(origin, example = 'plain/') {
  const page = await context.newPage();
  const name = `tab${context.pages().length}`;
  page.on('console', (m) => consoleLines.push(`${name} [${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => consoleLines.push(`${name} [pageerror] ${e.message}`));
  await page.goto(origin + pagePath(example));
  return page;
}
const unread = (page) => page.evaluate(() => document.querySelector('herald-bell')?.dataset.unread ?? null);
const role = (page) => page.evaluate(() => document.querySelector('herald-bell')?.stream?.role ?? null);
const status = (page) => page.evaluate(() => document.querySelector('herald-bell')?.dataset.status ?? null);

/** Every notification.created a tab delivered, in order (installed once per page). */
async function recordDeliveries(page) {
  await eventually('the bell has its stream', () => page.evaluate(() => !!document.querySelector('herald-bell')?.stream), Boolean, 10_000);
  await page.evaluate(() => {
    window.__delivered = [];
    document.querySelector('herald-bell').stream.on('notification.created', (env) => window.__delivered.push(env.data.notification.title));
  });
}

before(async () => {
  for (const url of [`${API}/healthz`, `${GATEWAY}/healthz`]) {
    const res = await fetch(url).catch((e) => ({ ok: false, status: e.message }));
    assert.ok(res.ok, `${url} is not answering (${res.status})`);
  }
  await new Promise((resolve) => server.listen(PAGE_PORT, '127.0.0.1', resolve));
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  context = await browser.newContext({ viewport: { width: 1180, height: 760 } });
});

after(async () => {
  writeFileSync(path.join(ARTIFACTS, 'js-browser-console.log'), consoleLines.join('\n') + '\n');
  if (Object.keys(figures).length) writeFileSync(path.join(ARTIFACTS, 'eight-tabs.json'), JSON.stringify(figures, null, 2) + '\n');
  await browser?.close();
  server.close();
});

function step(name, timeout, fn) {
  test(name, { timeout }, async (t) => {
    if (broken) return t.skip(`after failed step: ${broken}`);
    try {
      await fn(t);
    } catch (e) {
      broken = name;
      for (const [i, p] of (context?.pages() || []).entries()) {
        await p.screenshot({ path: path.join(ARTIFACTS, `js-failure-tab${i + 1}.png`) }).catch(() => {});
      }
      throw e;
    }
  });
}

// ------------------------------------------------------------------ scenario

let first;

step('the bell on another origin shows the exact count, lists, marks read and updates live', 60_000, async () => {
  for (let i = 1; i <= 3; i++) await publish(`Deploy ${i} finished · ${RUN}`);
  const { unread: expected } = await counts();
  assert.ok(expected >= 3);
  first = await newTab(ALLOWED);
  const { ms } = await eventually(`data-unread reads ${expected}`, () => unread(first), (v) => v === String(expected), 10_000);
  log(`exact count ${expected} after ${ms} ms, page on ${ALLOWED}, API on ${API}`);
  await eventually('the stream is live', () => status(first), (s) => s === 'live', 10_000);
  assert.equal(await first.locator('herald-bell [data-testid="badge"]').textContent(), String(expected));

  await first.locator('herald-bell [data-testid="bell"]').click();
  const titles = () => first.locator('herald-bell [data-testid="notification"] [data-testid="title"]').allTextContents();
  await eventually('the dropdown lists the 3', titles, (t) => [1, 2, 3].every((i) => t.includes(`Deploy ${i} finished · ${RUN}`)), 5000);

  const row = first.locator('herald-bell [data-testid="notification"]', { hasText: `Deploy 2 finished · ${RUN}` });
  await row.locator('[data-testid="mark-read"]').click();
  await eventually(`data-unread reads ${expected - 1}`, () => unread(first), (v) => v === String(expected - 1), 3000);
  await eventually('the row shows as read', () => row.getAttribute('data-unread'), (v) => v === 'false', 3000);
  // The bell shows a read at once; the server has it once the POST (after its CORS
  // preflight) is answered, and the event it announces brings the same count back.
  await eventually('the server agrees', counts, (c) => c.unread === expected - 1, 3000);
  await sleep(300);
  assert.equal(await unread(first), String(expected - 1), 'the event kept the exact count');

  await recordDeliveries(first);
  const t0 = Date.now();
  await publish(`Live one · ${RUN}`);
  await eventually(`data-unread reads ${expected} again, live`, () => unread(first), (v) => v === String(expected), 2000);
  log(`live publish shown after ${Date.now() - t0} ms`);
  await eventually('the new one is listed', titles, (t) => t.includes(`Live one · ${RUN}`), 2000);
  await first.keyboard.press('Escape');
});

step('from a disallowed origin the browser gets no data, and the server logs no error', 40_000, async () => {
  const marks = logMarks();
  const failures = [];
  const page = await context.newPage();
  page.on('console', (m) => { if (m.type() === 'error') failures.push(m.text()); });
  page.on('requestfailed', (r) => failures.push(`${r.url().split('?')[0]} ${r.failure()?.errorText}`));
  await page.goto(DISALLOWED + pagePath('plain/'));
  await eventually('the browser blocked the API answers (CORS)', () => failures.length, (n) => n > 0, 10_000);
  await sleep(3000); // room for any retry to deliver something
  assert.equal(await unread(page), null, 'no count reached the page');
  assert.equal(await page.locator('herald-bell [data-testid="badge"]').isVisible(), false);
  assert.notEqual(await status(page), 'live', 'no stream opened');
  assert.ok(failures.some((f) => /CORS|Access-Control|ERR_FAILED/i.test(f)), `the browser blames CORS: ${failures.slice(0, 3).join(' | ')}`);
  assert.deepEqual(problemsSince(marks), [], 'the services logged no error or warning');
  log(`blocked: ${failures.length} console errors / failed requests, 0 server errors`);
  await page.close();
  await first.close();
});

let tabs = [];

step(`${TABS} tabs at once share one stream and all show a publish within 1 s`, 90_000, async () => {
  tabs = await Promise.all(Array.from({ length: TABS }, () => newTab(ALLOWED)));
  const { unread: expected } = await counts();
  const opened = await eventually(`all ${TABS} tabs show ${expected}`, () => Promise.all(tabs.map(unread)),
    (v) => v.every((x) => x === String(expected)), 20_000);
  log(`${TABS} tabs consistent at ${expected} after ${opened.ms} ms`);
  await eventually('every tab is live', () => Promise.all(tabs.map(status)), (v) => v.every((s) => s === 'live'), 15_000);
  const roles = await Promise.all(tabs.map(role));
  assert.equal(roles.filter((r) => r === 'leader').length, 1, `one leader: ${roles}`);
  assert.equal(roles.filter((r) => r === 'follower').length, TABS - 1, `the rest follow: ${roles}`);
  const streams = await eventually('the gateway has exactly one stream open', openStreams, (n) => n === 1, 10_000);
  for (const t of tabs) await recordDeliveries(t);

  const t0 = Date.now();
  await publish(`Eight tabs · ${RUN}`);
  const accepted = Date.now() - t0;
  const seen = await eventually(`all ${TABS} tabs show ${expected + 1}`, () => Promise.all(tabs.map(unread)),
    (v) => v.every((x) => x === String(expected + 1)), 1000, 5);
  const total = Date.now() - t0;
  assert.equal(await openStreams(), 1, 'still one stream');
  figures.tabs = TABS;
  figures.open_streams_at_gateway = streams.value;
  figures.publish_to_consistent_count_ms = total;
  figures.publish_accepted_ms = accepted;
  figures.tabs_consistent_after_open_ms = opened.ms;
  log(`publish → all ${TABS} tabs at ${expected + 1}: ${total} ms (POST answered after ${accepted} ms, poll after it ${seen.ms} ms); gateway streams open: ${streams.value}`);
});

step('closing the leader tab hands over with nothing lost or shown twice', 90_000, async () => {
  const roles = await Promise.all(tabs.map(role));
  const leader = tabs[roles.indexOf('leader')];
  const rest = tabs.filter((t) => t !== leader);
  const { unread: before } = await counts();
  const titles = [1, 2, 3].map((i) => `Handover ${i} · ${RUN}`);

  const t0 = Date.now();
  await leader.close({ runBeforeUnload: false });
  await publish(titles[0]); // while the next leader takes over
  await publish(titles[1]);
  const newLeader = await eventually('another tab leads', () => Promise.all(rest.map(role)),
    (v) => v.filter((r) => r === 'leader').length === 1, 10_000);
  await publish(titles[2]);
  const done = await eventually(`the ${rest.length} tabs show ${before + 3}`, () => Promise.all(rest.map(unread)),
    (v) => v.every((x) => x === String(before + 3)), 10_000);
  figures.handover_new_leader_ms = newLeader.ms;
  void done;
  figures.handover_all_consistent_ms = Date.now() - t0;
  for (const [i, t] of rest.entries()) {
    const delivered = await t.evaluate(() => window.__delivered);
    for (const title of titles) {
      assert.equal(delivered.filter((d) => d === title).length, 1, `tab ${i + 1} delivered "${title}" once: ${JSON.stringify(delivered)}`);
    }
    assert.equal(new Set(delivered).size, delivered.length, `tab ${i + 1} delivered nothing twice`);
    const listed = await t.evaluate(() => document.querySelector('herald-bell').inbox.list().map((n) => n.title));
    for (const title of titles) assert.equal(listed.filter((x) => x === title).length, 1, `tab ${i + 1} lists "${title}" once`);
  }
  await eventually('one stream again', openStreams, (n) => n === 1, 10_000);
  log(`leader closed: new leader after ${newLeader.ms} ms, all ${rest.length} tabs at ${before + 3} after ${figures.handover_all_consistent_ms} ms, each event once`);
  for (const t of rest) await t.close();
});

step('the React (Vite) example app embeds the bell from another origin', 60_000, async () => {
  const page = await newTab(ALLOWED, 'react/dist/');
  const { unread: expected } = await counts();
  await eventually(`the app's bell reads ${expected}`, () => unread(page), (v) => v === String(expected), 10_000);
  await eventually('the app shows the count the bell reported', () => page.locator('[data-testid="unread-summary"]').textContent(),
    (t) => t.includes(`${expected} unread`), 5000);
  await publish(`Welcome to the React example · ${RUN}`);
  await eventually('live in the app', () => unread(page), (v) => v === String(expected + 1), 2000);
  await page.locator('herald-bell [data-testid="bell"]').click();
  await eventually('the dropdown lists it', () => page.locator('herald-bell [data-testid="title"]').allTextContents(),
    (t) => t.includes(`Welcome to the React example · ${RUN}`), 3000);
  await page.mouse.move(300, 600);
  await sleep(1800); // let the "fresh" highlight fade
  const file = path.join(ARTIFACTS, 'example-app.png');
  await page.screenshot({ path: file });
  log(`saved ${file}`);
});
