// @herald/client in a real headless Chromium, embedded in pages served from an origin
// that is neither the API's nor the gateway's. Run by scripts/js-test against a
// throw-away stack whose HERALD_CORS_ORIGINS allows PAGE_ORIGIN only.
//
// Environment (all required):
//   HERALD_API_URL, HERALD_GATEWAY_URL   the stack (http://127.0.0.1:<port>)
//   HERALD_USER_TOKEN                    user JWT (alice); HERALD_SERVICE_TOKEN: publish scope
//   HERALD_OTHER_USER_TOKEN              user JWT of a second user (dana), whose inbox is empty
//   PAGE_PORT                            port of this test's static server; the pages are
//                                        served as http://127.0.0.1:PAGE_PORT (allowed) and
//                                        http://localhost:PAGE_PORT (not allowed)
//   HERALD_STACK_DIR                     the stack's log folder (api.log, gateway.log)
//   HERALD_JWT_SECRET                    the stack's signing secret (HERALD_STREAM_TOKEN_SECRET
//                                        too, if set): the test signs tokens of its own, a
//                                        third user's and stream tokens that expire in seconds
//   HERALD_ARTIFACTS_DIR                 screenshots and figures
//   HERALD_CHROMIUM                      optional, default /usr/bin/chromium
//
// Steps (each depends on the one before):
//   1. the plain page's bell, from the allowed origin: exact count, the list, mark read,
//      a live publish;
//   2. the same page from a disallowed origin: no data reaches it (the browser blocks
//      the answers), and the services log no error or warning meanwhile;
//   3. eight tabs at once: all show the same count within 1 s of SENDING a publish (each
//      tab notes when its data-unread changed; figures per tab in eight-tabs.json), and
//      the gateway has exactly one stream open (herald_open_streams);
//   4. closing the leader tab while publishing: another tab takes over, every tab
//      shows each new notification exactly once, nothing is missing, one stream again;
//   5. the React (Vite) example app, screenshot with the dropdown open;
//   6. the bell's settings from another origin: the categories, a change saved over CORS
//      (PUT), the required one locked; this server has no Web Push, so the desktop
//      notifications switch is disabled with the reason and the desktop column is gone;
//   7. herald-sw.js's handlers (the package's service worker, dist/sw.js) with stand-ins
//      for the browser objects a service worker gets: the notification shown for a push
//      (title, body, tag, data), the app badge, what a click focuses or opens (never a
//      non-http URL), and the bell marking a clicked notification read;
//   8. a second user's two tabs: three comments with one group_key from three actors are
//      ONE entry, "Ana and 2 others commented on Launch plan", with a badge of 1 (live and
//      from REST; screenshot: test-artifacts/grouped-entry.png);
//   9. snoozing it from the bell's menu with the keyboard: gone from both tabs, badge 0,
//      listed in the Snoozed view; at its `until` (3 s) it comes back on top, badge 1;
//  10. snoozed again (with the mouse, "For 1 hour"), Unsnooze in the other tab's Snoozed
//      view brings it back at once;
//  11. herald.reauth: stream tokens that live 4 s (the test re-signs what the API mints),
//      so the gateway sends herald.reauth every ~3 s; publishing all along, the bell
//      renews through getToken() three times, resumes from its position each time, and
//      delivers every notification exactly once, in order, with no refetch;
//  12. herald.reset: three tabs whose position is ahead of the gateway's history (as after
//      a restore); the leader closes, the next resumes from there, the gateway answers
//      herald.reset, every tab's onResync fires, the bells refetch counts and list (and
//      show what the stream never delivered), and live events flow again at the reused
//      positions;
//  13. infinite scroll: 45 notifications for a third user; the dropdown shows one page (20)
//      and loads the next ones as it is scrolled with the mouse wheel, every entry
//      exactly once, newest first;
//  14. "Mark all read" in one of two tabs: data-unread 0 on both, every row read, the
//      server agrees;
//  15. the keyboard: Enter on the bell opens the dropdown, arrows, Home and End move the
//      focus through the entries (one tab stop), Enter marks one read (herald-select),
//      Tab reaches its buttons, Escape closes and gives the focus back to the bell, Space
//      opens it again, and Enter on an entry with an action_url marks it read and goes
//      there.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { createHmac, randomUUID } from 'node:crypto';
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
const OTHER_TOKEN = required('HERALD_OTHER_USER_TOKEN');
const JWT_SECRET = required('HERALD_JWT_SECRET');
const STREAM_SECRET = (process.env.HERALD_STREAM_TOKEN_SECRET || '').trim() || JWT_SECRET;
const PAGE_PORT = Number(required('PAGE_PORT'));
const STACK_DIR = required('HERALD_STACK_DIR');
const ARTIFACTS = path.resolve(process.env.HERALD_ARTIFACTS_DIR || path.join(REPO, 'test-artifacts'));
const CHROMIUM = process.env.HERALD_CHROMIUM || '/usr/bin/chromium';
const ALLOWED = `http://127.0.0.1:${PAGE_PORT}`;
const DISALLOWED = `http://localhost:${PAGE_PORT}`;
const TABS = 8;
mkdirSync(ARTIFACTS, { recursive: true });
for (const f of ['eight-tabs.json', 'example-app.png', 'grouped-entry.png', 'js-browser-console.log']) {
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

/** One of the gateway's Prometheus metrics, e.g. `herald_stream_closes_total{reason="reauth"}`. */
async function metric(name) {
  const text = await (await fetch(`${GATEWAY}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(name + ' '));
  assert.ok(line, `${name} is in the gateway metrics`);
  return Number(line.slice(name.length + 1));
}
/** The gateway's open streams. */
const openStreams = () => metric('herald_open_streams');

// ------------------------------------------------------------------ tokens of the test's own

const jwtPart = (part) => JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
/** Signs `payload` with `header` (HS256, as the stack's tokens are). */
function signJwt(header, payload, secret) {
  assert.equal(header.alg, 'HS256', 'the stack signs its tokens with HS256');
  const data = `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}`;
  return `${data}.${createHmac('sha256', secret).update(data).digest('base64url')}`;
}
/** A user token for `sub`: alice's claims (audience, expiry) with another subject. */
function userToken(sub) {
  const [h, p] = USER_TOKEN.split('.');
  return signJwt(jwtPart(h), { ...jwtPart(p), sub }, JWT_SECRET);
}
/**
 * Makes every stream token `page` gets from `POST /v1/stream-tokens` expire `seconds`
 * after it is minted: the API's answer, re-signed with a nearer `exp`. The gateway
 * sends `herald.reauth` a second before it. `minted` collects the times.
 */
async function shortLivedStreamTokens(page, seconds, minted) {
  await page.route(`${API}/v1/stream-tokens`, async (route) => {
    if (route.request().method() !== 'POST') return route.continue();
    const res = await route.fetch();
    const body = await res.json();
    const [h, p] = body.token.split('.');
    const exp = Math.floor(Date.now() / 1000) + seconds;
    body.token = signJwt(jwtPart(h), { ...jwtPart(p), exp }, STREAM_SECRET);
    body.expires_at = exp;
    body.expires_in = seconds;
    minted.push(Date.now());
    await route.fulfill({ response: res, json: body });
  });
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
const SERVED = ['/web/herald-bell.js', '/web/herald-sw.js', '/clients/js/examples/', '/clients/js/dist/'];
const server = createServer((req, res) => {
  let p = decodeURIComponent(new URL(req.url, 'http://x').pathname);
  if (p.startsWith('/opened/')) { // where an entry's action_url leads
    res.writeHead(200, { 'content-type': TYPES['.html'] }).end('<!doctype html><title>Opened</title><p>Opened from the bell.</p>');
    return;
  }
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

const pagePath = (example, token = USER_TOKEN) => `/clients/js/examples/${example}?api=${encodeURIComponent(API)}&stream=${encodeURIComponent(GATEWAY)}#token=${encodeURIComponent(token)}`;

// ------------------------------------------------------------------ browser

let browser;
let context;
let broken = null;
const consoleLines = [];
const figures = {};

async function newTab(origin, example = 'plain/', token = USER_TOKEN, setup = null) {
  const page = await context.newPage();
  const name = `tab${context.pages().length}`;
  page.on('console', (m) => consoleLines.push(`${name} [${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => consoleLines.push(`${name} [pageerror] ${e.message}`));
  if (setup) await setup(page);
  await page.goto(origin + pagePath(example, token));
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

  // Each tab notes the moment its data-unread turns to the new count; the clock starts
  // when the publish is sent, not when it is answered.
  const want = String(expected + 1);
  await Promise.all(tabs.map((t) => t.evaluate((value) => {
    window.__countAt = null;
    const bell = document.querySelector('herald-bell');
    new MutationObserver(() => {
      if (window.__countAt === null && bell.dataset.unread === value) window.__countAt = Date.now();
    }).observe(bell, { attributes: true, attributeFilter: ['data-unread'] });
  }, want)));
  const sentAt = Date.now();
  const answered = publish(`Eight tabs · ${RUN}`).then(() => Date.now() - sentAt);
  const seen = await eventually(`all ${TABS} tabs show ${want}`, () => Promise.all(tabs.map((t) => t.evaluate(() => window.__countAt))),
    (v) => v.every((at) => at !== null), 5000, 5).catch((e) => e);
  const accepted = await answered;
  const delays = seen instanceof Error ? null : seen.value.map((at) => at - sentAt);
  const after = await openStreams();
  figures.tabs = TABS;
  figures.open_streams_at_gateway = streams.value;
  figures.open_streams_after_publish = after;
  figures.per_tab_delay_ms = delays;
  figures.slowest_tab_ms = delays && Math.max(...delays);
  figures.publish_answered_ms = accepted;
  figures.tabs_consistent_after_open_ms = opened.ms;
  if (seen instanceof Error) throw seen;
  log(`publish sent → each of the ${TABS} tabs at ${want} after ${delays.join(', ')} ms (slowest ${figures.slowest_tab_ms} ms; the POST was answered after ${accepted} ms); gateway streams open: ${streams.value}, then ${after}`);
  assert.ok(figures.slowest_tab_ms <= 1000, `every tab within 1 s of sending: ${delays.join(', ')} ms`);
  assert.deepEqual(await Promise.all(tabs.map(unread)), tabs.map(() => want), 'and they still agree');
  assert.equal(after, 1, 'still one stream');
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
  await page.close();
});

// ------------------------------------------------------------------ settings and the service worker

const inBell = (page, selector) => page.locator(`herald-bell ${selector}`);

step('the bell\'s settings from another origin: preferences saved over CORS, no desktop switch without Web Push', 40_000, async () => {
  await http('PUT', `${API}/v1/categories/digest`, SERVICE_TOKEN, { in_app: true, web_push: false });
  await http('PUT', `${API}/v1/categories/alerts`, SERVICE_TOKEN, { required: true });
  const page = await newTab(ALLOWED);
  await eventually('the bell is live', () => status(page), (s) => s === 'live', 10_000);
  await inBell(page, '[data-testid="bell"]').click();
  await inBell(page, '[data-testid="settings-button"]').click();
  const row = (c) => inBell(page, `[data-testid="category"][data-category="${c}"]`);
  await eventually('the categories are listed', () => page.evaluate(() =>
    Array.from(document.querySelector('herald-bell').shadowRoot.querySelectorAll('[data-testid="category"]'), (tr) => tr.dataset.category)),
  (v) => v.includes('digest') && v.includes('alerts'), 5000);
  assert.equal(await row('alerts').getAttribute('data-required'), 'true', 'alerts is locked');
  assert.equal(await row('alerts').locator('[data-testid="in_app"]').getAttribute('aria-disabled'), 'true');

  // No VAPID key on this server (404): the switch says so, and there is no desktop column.
  const hint = await eventually('the switch explains it', () => inBell(page, '[data-testid="push-hint"]').textContent(), (t) => /not configured/.test(t), 5000);
  assert.equal(await inBell(page, '[data-testid="push-switch"]').isDisabled(), true, 'the switch is disabled');
  assert.equal(await row('digest').locator('[data-testid="web_push"]').isVisible(), false, 'no desktop column');
  log(`desktop notifications: “${hint.value}”`);

  // A change, from this origin: the browser preflights the PUT, the server keeps it.
  const sw = row('digest').locator('[data-testid="in_app"]');
  assert.equal(await sw.getAttribute('aria-checked'), 'true');
  await sw.click();
  await eventually('the server has digest in app off', async () => (await http('GET', `${API}/v1/me/preferences`, USER_TOKEN)).categories.digest,
    (d) => d.in_app === false, 3000);
  await eventually('the switch shows it', () => sw.getAttribute('aria-checked'), (v) => v === 'false', 2000);
  await sw.click(); // and back
  await eventually('the server has digest in app on again', async () => (await http('GET', `${API}/v1/me/preferences`, USER_TOKEN)).categories.digest,
    (d) => d.in_app === true, 3000);
  await page.close();
});

step('herald-sw.js: a push shows its notification and badge, a click focuses or opens only http(s), the bell marks it read', 40_000, async () => {
  const page = await newTab(ALLOWED);
  const results = await page.evaluate(async (origin) => {
    const sw = await import('/clients/js/dist/sw.js');
    const scope = `${origin}/app/`;
    const calls = [];
    const registration = { scope, showNotification: async (title, options) => { calls.push(['show', title, options]); } };
    const badge = { setAppBadge: async (n) => { calls.push(['badge', n]); }, clearAppBadge: async () => { calls.push(['clear']); } };
    const options = sw.workerOptions(`${origin}/herald-sw.js?icon=/icon.png&url=javascript:alert(1)`);
    const out = { options };
    const take = () => calls.splice(0);

    const payload = { id: 'n-1', title: 'Deploy finished', body: 'v2 is live', action_url: `${origin}/app/deploys/7`, category: 'deploy', unread: 3 };
    await sw.handlePush(sw.parsePayload({ json: () => payload }), { registration, badge, options });
    out.push = take();
    await sw.handlePush(sw.parsePayload({ json: () => ({ ...payload, id: 'n-2', unread: 0, action_url: 'javascript:alert(1)', body: null }) }), { registration, badge, options });
    out.pushUnsafe = take();
    await sw.handlePush(sw.parsePayload({ json: () => { throw new SyntaxError('not JSON'); } }), { registration, badge, options });
    out.pushGarbage = take();

    const tab = (url, extra = {}) => {
      const c = { url, ...extra, messages: [], focus: async () => { calls.push(['focus', url]); return c; }, postMessage: (m) => c.messages.push(m) };
      return c;
    };
    const clientsOf = (list) => ({
      matchAll: async (o) => { calls.push(['matchAll', o.type, o.includeUncontrolled]); return list; },
      openWindow: async (url) => { calls.push(['open', url]); return tab(url); },
    });
    const note = (data) => ({ data, close: () => calls.push(['close']) });
    const data = (action_url) => ({ herald: true, id: 'n-1', action_url, category: 'deploy', url: scope });

    const there = tab(`${origin}/app/deploys/7#top`);
    await sw.handleNotificationClick(note(data(`${origin}/app/deploys/7`)), { clients: clientsOf([tab(`${origin}/app/`), there]), scope });
    out.clickThere = take();
    out.clickThereMessages = there.messages;
    const opened = await sw.handleNotificationClick(note(data(`${origin}/app/deploys/8`)), { clients: clientsOf([tab(`${origin}/app/`)]), scope });
    out.clickOpen = take();
    out.clickOpenMessages = opened.messages;
    await sw.handleNotificationClick(note(data('javascript:alert(1)')), {
      clients: clientsOf([tab(`${origin}/elsewhere`, { focused: true }), tab(`${origin}/app/a`), tab(`${origin}/app/b`, { focused: true })]), scope });
    out.clickUnsafe = take();
    await sw.handleNotificationClick(note(data(null)), { clients: clientsOf([]), scope });
    out.clickNothingOpen = take();
    await sw.handleNotificationClick(note(data(null)), { clients: clientsOf([tab(`${origin}/elsewhere`)]), scope });
    out.clickOtherPage = take();

    // The wiring a service worker gets from installHeraldServiceWorker(self).
    const listeners = {};
    const waited = [];
    sw.installHeraldServiceWorker({
      location: { href: `${origin}/herald-sw.js` }, registration, clients: clientsOf([]), navigator: badge,
      addEventListener: (type, fn) => { listeners[type] = fn; },
    });
    out.listens = Object.keys(listeners).sort();
    listeners.push({ data: { json: () => payload }, waitUntil: (p) => waited.push(p) });
    listeners.notificationclick({ notification: note({ app: 'its own' }), waitUntil: (p) => waited.push(p) });
    await Promise.all(waited);
    out.wired = { waited: waited.length, calls: take() };
    out.isHeralds = [sw.isHeralds({ data: data(null) }), sw.isHeralds({ data: { id: 'x' } }), sw.isHeralds({})];
    return out;
  }, ALLOWED);

  assert.deepEqual(results.options, { icon: `${ALLOWED}/icon.png` }, 'worker options: http(s) URLs only');
  const data = (id, action_url) => ({ herald: true, id, action_url, category: 'deploy', url: `${ALLOWED}/app/` });
  assert.deepEqual(results.push, [
    ['show', 'Deploy finished', { data: data('n-1', `${ALLOWED}/app/deploys/7`), body: 'v2 is live', tag: 'n-1', icon: `${ALLOWED}/icon.png` }],
    ['badge', 3],
  ], 'a push: the notification (tag = id), then the badge');
  assert.deepEqual(results.pushUnsafe, [
    ['show', 'Deploy finished', { data: data('n-2', null), tag: 'n-2', icon: `${ALLOWED}/icon.png` }],
    ['clear'],
  ], 'a javascript: action_url is dropped; unread 0 clears the badge');
  assert.deepEqual(results.pushGarbage, [['show', 'New notification', { data: { herald: true, id: null, action_url: null, category: null, url: `${ALLOWED}/app/` } }]],
    'a push that is not Herald\'s still shows something (userVisibleOnly)');

  assert.deepEqual(results.clickThere, [['close'], ['matchAll', 'window', true], ['focus', `${ALLOWED}/app/deploys/7#top`]], 'the tab already there is focused');
  assert.deepEqual(results.clickThereMessages, [{ type: 'herald.notificationclick', id: 'n-1', action_url: `${ALLOWED}/app/deploys/7` }], 'and told which one');
  assert.deepEqual(results.clickOpen, [['close'], ['matchAll', 'window', true], ['open', `${ALLOWED}/app/deploys/8`]], 'else action_url is opened');
  assert.deepEqual(results.clickOpenMessages, [{ type: 'herald.notificationclick', id: 'n-1', action_url: `${ALLOWED}/app/deploys/8` }]);
  assert.deepEqual(results.clickUnsafe, [['close'], ['matchAll', 'window', true], ['focus', `${ALLOWED}/app/b`]],
    'a javascript: URL is never opened: the focused tab of the app instead');
  assert.deepEqual(results.clickNothingOpen, [['close'], ['matchAll', 'window', true], ['open', `${ALLOWED}/app/`]], 'no tab: the app is opened');
  assert.deepEqual(results.clickOtherPage, [['close'], ['matchAll', 'window', true], ['focus', `${ALLOWED}/elsewhere`]], 'else any tab of the origin');
  assert.deepEqual(results.listens, ['notificationclick', 'push', 'pushsubscriptionchange']);
  assert.equal(results.wired.waited, 1, 'the push extends its event; a click on the app\'s own notification is left alone');
  assert.deepEqual(results.wired.calls.map((c) => c[0]), ['show', 'badge']);
  assert.deepEqual(results.isHeralds, [true, false, false]);

  // The bell's half of a click: the tab told about it marks the notification read.
  await publish(`Clicked in the system tray · ${RUN}`);
  await eventually('the bell has it', () => page.evaluate((t) => document.querySelector('herald-bell').inbox.list().some((n) => n.title === t), `Clicked in the system tray · ${RUN}`), Boolean, 5000);
  const id = await page.evaluate((t) => document.querySelector('herald-bell').inbox.list().find((n) => n.title === t).id, `Clicked in the system tray · ${RUN}`);
  const before = (await counts()).unread;
  await page.evaluate((nid) => navigator.serviceWorker.dispatchEvent(new MessageEvent('message', { data: { type: 'herald.notificationclick', id: nid, action_url: null } })), id);
  await eventually('the server has it read', counts, (c) => c.unread === before - 1, 3000);
  const listed = await http('GET', `${API}/v1/me/notifications?status=unread&limit=100`, USER_TOKEN);
  assert.ok(!listed.items.some((n) => n.id === id), 'no longer unread');
  log('service worker handlers: push, badge, clicks; the bell marked the clicked one read');
  await page.close();
});

// ------------------------------------------------------------------ groups and snooze

const GROUPED = 'Ana and 2 others commented on Launch plan';
let dana = [];
let groupId;
let olderId;
const danaCounts = () => http('GET', `${API}/v1/me/notifications/counts`, OTHER_TOKEN);
const danaSend = (body) => http('POST', `${API}/v1/notifications`, SERVICE_TOKEN, { recipients: ['dana'], ...body });
/** The titles of the bell's entries, top to bottom, as shown. */
const shownTitles = (page) => inBell(page, '[data-testid="notification"] [data-testid="title"]').allTextContents();
const groupRow = (page) => inBell(page, `[data-testid="notification"][data-id="${groupId}"]`);
/** The id of what has focus inside the bell. */
const focusedId = (page) => page.evaluate(() => document.querySelector('herald-bell').shadowRoot.activeElement?.closest('[data-id]')?.dataset.id ?? null);

step('three comments with one group_key are one entry, "Ana and 2 others commented on Launch plan", badge 1', 60_000, async () => {
  // An older notification, read: the group has to rise above it.
  const older = await danaSend({ category: 'deploy', title: 'Deploy 41 finished', body: 'Production runs v41.' });
  olderId = older.notifications[0].id;
  await http('POST', `${API}/v1/me/notifications/${olderId}/read`, OTHER_TOKEN);
  const first = await newTab(ALLOWED, 'plain/', OTHER_TOKEN);
  dana = [first];
  await eventually('the bell is live', () => status(first), (s) => s === 'live', 10_000);
  await eventually('data-unread reads 0', () => unread(first), (v) => v === '0', 5000);
  await inBell(first, '[data-testid="bell"]').click();

  // Live: the first one is notification.created, the next two notification.updated.
  const ids = [];
  for (const actor of ['Maya', 'Sam', 'Ana']) {
    const answer = await danaSend({
      category: 'comment', title: `${actor} commented on Launch plan`, body: `“Ship it on Thursday.” — ${actor}`,
      group_key: `doc:42:comments:${RUN}`, actor, action_url: 'https://app.example.com/docs/42',
    });
    ids.push(answer.notifications[0].id);
  }
  groupId = ids[0];
  assert.deepEqual(ids, [groupId, groupId, groupId], 'the server answered one entry for the three');
  await eventually('one entry for the group, on top, worded for three', () => shownTitles(first),
    (t) => t.length === 2 && t[0] === GROUPED && t[1] === 'Deploy 41 finished', 5000);
  await eventually('data-unread reads 1', () => unread(first), (v) => v === '1', 3000);
  assert.equal(await inBell(first, '[data-testid="badge"]').textContent(), '1');
  assert.equal(await groupRow(first).locator('[data-testid="group-count"]').textContent(), '3', 'the count is on its icon');
  assert.equal(await groupRow(first).locator('[data-testid="actors"]').textContent(), 'Ana and 2 others', 'the newest actor is named');
  assert.equal(await groupRow(first).getAttribute('data-unread'), 'true');
  assert.equal((await danaCounts()).unread, 1, 'the server counts the group once');
  const listed = (await http('GET', `${API}/v1/me/notifications?limit=10`, OTHER_TOKEN)).items;
  assert.deepEqual(listed.map((n) => [n.id, n.group_count, n.actors]), [[groupId, 3, ['Ana', 'Sam', 'Maya']], [olderId, 1, []]]);

  // From REST: a tab opened now shows the same.
  const second = await newTab(ALLOWED, 'plain/', OTHER_TOKEN);
  dana.push(second);
  await eventually('the second tab reads 1', () => unread(second), (v) => v === '1', 10_000);
  await inBell(second, '[data-testid="bell"]').click();
  await eventually('the second tab shows the group', () => shownTitles(second), (t) => t[0] === GROUPED && t.length === 2, 5000);

  await first.bringToFront();
  await first.mouse.move(200, 500);
  await sleep(1800); // let the "fresh" highlight fade
  const dd = await inBell(first, '[data-testid="dropdown"]').boundingBox();
  const file = path.join(ARTIFACTS, 'grouped-entry.png');
  await first.evaluate(() => { document.querySelector('main').style.visibility = 'hidden'; }); // the bell alone
  await first.screenshot({ path: file, clip: { x: dd.x - 24, y: 0, width: dd.width + 48, height: dd.y + dd.height + 24 } });
  await first.evaluate(() => { document.querySelector('main').style.visibility = ''; });
  log(`one entry for three comments: “${GROUPED}”, badge 1; saved ${file}`);
});

step('snoozed from the bell with the keyboard, it leaves every tab and comes back at its time', 60_000, async () => {
  const [first, second] = dana;
  await first.bringToFront();
  await first.evaluate(() => {
    const bell = document.querySelector('herald-bell');
    bell.snoozeOptions = [...bell.snoozeOptions, { label: 'For 3 seconds', until: (now) => new Date(now.getTime() + 3000) }];
  });
  const button = groupRow(first).locator('[data-testid="snooze"]');
  await button.focus();
  await first.keyboard.press('Enter');
  const options = inBell(first, '[data-testid="snooze-menu"] [data-testid="snooze-option"]');
  await eventually('the menu is open', () => button.getAttribute('aria-expanded'), (v) => v === 'true', 2000);
  assert.deepEqual(await options.locator('span:first-child').allTextContents(),
    ['For 1 hour', 'Until tomorrow', 'Until next week', 'For 3 seconds'], 'the default choices, and ours');
  assert.equal(await first.evaluate(() => document.querySelector('herald-bell').shadowRoot.activeElement?.dataset.testid), 'snooze-option', 'focus is in the menu');
  await first.keyboard.press('End');
  const until = Date.now() + 3000;
  await first.keyboard.press('Enter');

  await eventually('gone from both tabs', () => Promise.all(dana.map(shownTitles)), (v) => v.every((t) => !t.includes(GROUPED)), 3000);
  await eventually('data-unread reads 0 on both', () => Promise.all(dana.map(unread)), (v) => v.every((x) => x === '0'), 3000);
  assert.equal(await focusedId(first), olderId, 'focus went to the entry that took its place');
  const c = await danaCounts();
  assert.deepEqual([c.unread, c.total], [0, 1], 'out of the counts');
  const snoozed = (await http('GET', `${API}/v1/me/notifications?status=snoozed`, OTHER_TOKEN)).items;
  assert.deepEqual(snoozed.map((n) => n.id), [groupId], 'listed as snoozed');
  assert.ok(Math.abs(Date.parse(snoozed[0].snoozed_until) - until) < 1000, `until ≈ now + 3 s: ${snoozed[0].snoozed_until}`);

  await second.bringToFront();
  await inBell(second, '[data-testid="snoozed-button"]').click();
  await eventually('the other tab\'s Snoozed view lists it', () => inBell(second, '[data-testid="snoozed-notification"] [data-testid="title"]').allTextContents(),
    (t) => t.length === 1 && t[0] === GROUPED, 3000);

  const back = await eventually('back with data-unread 1 on both', () => Promise.all(dana.map(unread)), (v) => v.every((x) => x === '1'), 10_000);
  const backAt = Date.now();
  assert.ok(backAt >= until, `not before its time (${until - backAt} ms early)`);
  await eventually('on top again, unread', () => shownTitles(first), (t) => t[0] === GROUPED && t.length === 2, 2000);
  assert.equal(await groupRow(first).getAttribute('data-unread'), 'true');
  await eventually('the Snoozed view empties itself', () => inBell(second, '[data-testid="snoozed-empty"]').isVisible(), Boolean, 2000);
  log(`snoozed for 3 s: back ${backAt - until} ms after its time (poll ${back.ms} ms), on both tabs`);
});

step('snoozed again for an hour, Unsnooze in the other tab brings it back at once', 30_000, async () => {
  const [first, second] = dana;
  await first.bringToFront();
  await groupRow(first).hover();
  await groupRow(first).locator('[data-testid="snooze"]').click();
  await inBell(first, '[data-testid="snooze-option"]').filter({ hasText: 'For 1 hour' }).click();
  await eventually('data-unread reads 0 on both', () => Promise.all(dana.map(unread)), (v) => v.every((x) => x === '0'), 3000);
  const snoozed = (await http('GET', `${API}/v1/me/notifications?status=snoozed`, OTHER_TOKEN)).items;
  assert.ok(Math.abs(Date.parse(snoozed[0].snoozed_until) - Date.now() - 3_600_000) < 5000, `for an hour: ${snoozed[0]?.snoozed_until}`);

  await second.bringToFront();
  const unsnooze = inBell(second, '[data-testid="snoozed-notification"] [data-testid="unsnooze"]');
  await eventually('listed in the other tab\'s Snoozed view, live', () => unsnooze.count(), (n) => n === 1, 3000);
  await unsnooze.click();
  await eventually('back with data-unread 1 on both', () => Promise.all(dana.map(unread)), (v) => v.every((x) => x === '1'), 3000);
  await eventually('on top of the first tab\'s list', () => shownTitles(first), (t) => t[0] === GROUPED, 2000);
  assert.deepEqual((await http('GET', `${API}/v1/me/notifications?status=snoozed`, OTHER_TOKEN)).items, [], 'nothing snoozed');
  for (const t of dana) await t.close();
});

// ------------------------------------------------------------------ the stream's renewals and resets

/** Records, in the page, every resync its bell's stream asks for (`window.__resyncs`). */
const recordResyncs = (page) => page.evaluate(() => {
  window.__resyncs = [];
  document.querySelector('herald-bell').stream.onResync(null, (reason) => window.__resyncs.push(reason));
});
/** The gateway streams a page opens: the `last_event_id` each one resumes from (null: none). */
function streamOpens(page) {
  const opens = [];
  page.on('request', (r) => {
    if (r.url().startsWith(`${GATEWAY}/v1/stream?`)) opens.push(new URL(r.url()).searchParams.get('last_event_id'));
  });
  return opens;
}
const TOKEN_SECONDS = 4;

step('herald.reauth: stream tokens about to expire are renewed through getToken(), and the stream goes on with nothing lost', 60_000, async () => {
  assert.equal(context.pages().length, 0, 'no other tab (no other leader for alice)');
  const minted = [];
  let opens;
  const page = await newTab(ALLOWED, 'plain/', USER_TOKEN, async (p) => {
    opens = streamOpens(p);
    await shortLivedStreamTokens(p, TOKEN_SECONDS, minted);
  });
  await eventually('the bell is live', () => status(page), (s) => s === 'live', 10_000);
  assert.equal(await role(page), 'leader');
  await recordDeliveries(page);
  await recordResyncs(page);
  const reauthsBefore = await metric('herald_stream_closes_total{reason="reauth"}');
  const mintedBefore = minted.length;

  // Publishing all along (one every 200 ms) until the token was renewed three times,
  // and a little after: some are sent while the bell is between two streams.
  const titles = [];
  const started = Date.now();
  let settle = 0;
  while (settle < 5 && Date.now() - started < 20_000) {
    const title = `Renewal ${titles.length + 1} · ${RUN}`;
    await publish(title);
    titles.push(title);
    if (minted.length - mintedBefore >= 3) settle++;
    await sleep(200);
  }
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  const renewals = minted.length - mintedBefore;
  assert.ok(renewals >= 3, `getToken() renewed the token three times in ${seconds} s (tokens of ${TOKEN_SECONDS} s): ${renewals}`);
  const delivered = await eventually('every one delivered', () => page.evaluate(() => window.__delivered),
    (d) => titles.every((t) => d.includes(t)), 5000);
  assert.deepEqual(delivered.value.filter((t) => t.startsWith('Renewal ')), titles, 'each exactly once, in the order sent');
  const reauths = await eventually('the gateway closed a stream for herald.reauth before each renewal',
    async () => (await metric('herald_stream_closes_total{reason="reauth"}')) - reauthsBefore, (n) => n >= renewals, 3000);
  assert.equal(opens[0], null, 'the first stream starts at the head');
  const resumed = opens.slice(1);
  assert.ok(resumed.length >= renewals, `every renewal opened a stream: ${JSON.stringify(opens)}`);
  assert.ok(resumed.every((id) => /^\d+$/.test(id)), `each renewed stream resumes from its position: ${JSON.stringify(opens)}`);
  assert.deepEqual(await page.evaluate(() => window.__resyncs), [], 'no refetch was needed');
  const { unread: expected } = await counts();
  await eventually(`data-unread reads ${expected}`, () => unread(page), (v) => v === String(expected), 2000);
  assert.equal(await status(page), 'live');
  const listed = await page.evaluate(() => document.querySelector('herald-bell').inbox.list().map((n) => n.title));
  for (const t of titles) assert.equal(listed.filter((x) => x === t).length, 1, `"${t}" listed once`);
  log(`${titles.length} notifications over ${seconds} s, tokens of ${TOKEN_SECONDS} s: ${renewals} renewals through getToken() (gateway: ${reauths.value} herald.reauth), resumed from ${resumed.join(', ')}, each delivered once`);
  await page.close();
});

step('herald.reset: tabs ahead of the gateway\'s history get onResync, the bells refetch counts and list, and go on live', 60_000, async () => {
  // As after a restore of the database: the tabs saw positions the server no longer
  // has. The leader's stream carries on from its own position; the next leader resumes
  // from the highest any tab saw, and the gateway answers herald.reset at its head.
  const AHEAD = 2 ** 52;
  const resetsBefore = await metric('herald_resets_total');
  const leader = await newTab(ALLOWED);
  await eventually('the first tab leads', () => role(leader), (r) => r === 'leader', 10_000);
  const rest = [];
  const opens = new Map();
  const fetched = new Map();
  for (let i = 0; i < 2; i++) {
    const t = await newTab(ALLOWED, 'plain/', USER_TOKEN, async (p) => {
      opens.set(p, streamOpens(p));
      const calls = [];
      fetched.set(p, calls);
      p.on('request', (r) => {
        const u = new URL(r.url());
        if (r.method() === 'GET' && `${u.origin}` === API && u.pathname.startsWith('/v1/me/notifications')) calls.push(u.pathname);
      });
    });
    rest.push(t);
  }
  const all = [leader, ...rest];
  await eventually('every tab is live', () => Promise.all(all.map(status)), (v) => v.every((s) => s === 'live'), 10_000);
  const { unread: before } = await counts();
  await eventually(`every tab reads ${before}`, () => Promise.all(all.map(unread)), (v) => v.every((x) => x === String(before)), 5000);
  for (const t of all) {
    await recordDeliveries(t);
    await recordResyncs(t);
  }
  await rest[0].evaluate(({ key, seq }) => {
    const channel = new BroadcastChannel('herald:' + key); // the tabs' own channel: "a tab saw this position"
    channel.postMessage({ t: 'pos', seq });
    channel.close();
  }, { key: `${GATEWAY}|alice`, seq: AHEAD });
  await eventually('every tab has the position ahead', () => Promise.all(all.map((t) => t.evaluate(() => document.querySelector('herald-bell').stream.lastSeq))),
    (v) => v.every((x) => x === AHEAD), 2000);

  // Its event is below that position: every tab drops it as seen. Only a refetch shows it.
  const missed = `Missed by the stream · ${RUN}`;
  await publish(missed);
  await eventually('the server counts it', counts, (c) => c.unread === before + 1, 3000);
  await sleep(500);
  for (const t of all) assert.ok(!(await t.evaluate(() => window.__delivered)).includes(missed), 'dropped as already seen');
  assert.deepEqual(await Promise.all(all.map(unread)), all.map(() => String(before)), 'no tab knows of it yet');

  for (const calls of fetched.values()) calls.length = 0;
  await leader.close({ runBeforeUnload: false });
  const led = await eventually('another tab leads', () => Promise.all(rest.map(role)), (v) => v.includes('leader'), 10_000);
  const next = rest[led.value.indexOf('leader')];
  await eventually('it resumed from the position ahead', () => opens.get(next), (o) => o.includes(String(AHEAD)), 5000);
  await eventually('onResync("reset") on both tabs', () => Promise.all(rest.map((t) => t.evaluate(() => window.__resyncs))),
    (v) => v.every((r) => r.includes('reset')), 5000);
  await eventually(`both bells refetched: data-unread ${before + 1}`, () => Promise.all(rest.map(unread)), (v) => v.every((x) => x === String(before + 1)), 5000);
  for (const [i, t] of rest.entries()) {
    const calls = fetched.get(t);
    assert.ok(calls.includes('/v1/me/notifications/counts') && calls.includes('/v1/me/notifications'), `tab ${i + 1} fetched counts and the list: ${calls.join(', ')}`);
    const listed = await t.evaluate(() => document.querySelector('herald-bell').inbox.list().map((n) => n.title));
    assert.equal(listed.filter((x) => x === missed).length, 1, `tab ${i + 1} lists what the stream never delivered`);
    assert.ok(!(await t.evaluate(() => window.__delivered)).includes(missed));
  }
  assert.ok((await metric('herald_resets_total')) > resetsBefore, 'the gateway sent herald.reset');

  // After the reset the stream starts over at the gateway's head: later events are
  // delivered although their positions are below what the tabs saw before.
  const after = `After the reset · ${RUN}`;
  const t0 = Date.now();
  await publish(after);
  await eventually('delivered live on both tabs', () => Promise.all(rest.map((t) => t.evaluate(() => window.__delivered))),
    (v) => v.every((d) => d.filter((x) => x === after).length === 1), 3000);
  await eventually(`data-unread ${before + 2} on both`, () => Promise.all(rest.map(unread)), (v) => v.every((x) => x === String(before + 2)), 2000);
  assert.equal((await counts()).unread, before + 2, 'the server agrees');
  log(`position ${AHEAD} (ahead of the head): herald.reset, onResync on both tabs, counts and list refetched; the next event live after ${Date.now() - t0} ms`);
  for (const t of rest) await t.close();
});

// ------------------------------------------------------------------ the dropdown: scroll, mark all read, keyboard

const ERIN = `erin-${RUN}`;
const ERIN_TOKEN = userToken(ERIN);
const PAGED = 45; // more than two pages of 20
let erin = [];
const erinCounts = () => http('GET', `${API}/v1/me/notifications/counts`, ERIN_TOKEN);
const erinSend = (body) => http('POST', `${API}/v1/notifications`, SERVICE_TOKEN, { recipients: [ERIN], category: 'deploy', body: 'Sent by the @herald/client browser test.', ...body });
const rowCount = (page) => inBell(page, '[data-testid="notification"]').count();
const pagedTitle = (i) => `Page item ${String(i).padStart(2, '0')} · ${RUN}`;

step('infinite scroll: the dropdown loads the next pages as it is scrolled, every entry exactly once', 90_000, async () => {
  for (let i = 1; i <= PAGED; i++) await erinSend({ title: pagedTitle(i) });
  const cursors = [];
  const page = await newTab(ALLOWED, 'plain/', ERIN_TOKEN, (p) => {
    p.on('request', (r) => {
      const u = new URL(r.url());
      if (r.method() === 'GET' && u.origin === API && u.pathname === '/v1/me/notifications') cursors.push(u.searchParams.get('cursor'));
    });
  });
  erin = [page];
  await eventually(`data-unread reads ${PAGED}`, () => unread(page), (v) => v === String(PAGED), 10_000);
  await inBell(page, '[data-testid="bell"]').click();
  await eventually('one page is listed', () => rowCount(page), (n) => n === 20, 5000);
  await sleep(300);
  assert.equal(await rowCount(page), 20, 'no more until it is scrolled');

  const box = await inBell(page, '[data-testid="list"]').boundingBox();
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  const scrolled = await eventually(`all ${PAGED} are listed`, async () => {
    await page.mouse.wheel(0, 1500);
    return rowCount(page);
  }, (n) => n === PAGED, 15_000, 150);
  await sleep(300);
  const titles = await shownTitles(page);
  assert.deepEqual(titles, Array.from({ length: PAGED }, (_, i) => pagedTitle(PAGED - i)), 'each exactly once, newest first');
  const ids = await page.evaluate(() => Array.from(document.querySelector('herald-bell').shadowRoot.querySelectorAll('[data-testid="notification"]'), (li) => li.dataset.id));
  assert.equal(new Set(ids).size, PAGED, 'no id twice');
  const paged = cursors.filter(Boolean);
  assert.equal(paged.length, 2, `two more pages, each fetched once: ${JSON.stringify(cursors)}`);
  assert.equal(new Set(paged).size, 2);
  assert.equal(await inBell(page, '[data-testid="empty"]').isVisible(), false);
  assert.equal(await inBell(page, '[data-testid="loading"]').isVisible(), false, 'nothing left loading');
  log(`${PAGED} notifications: 20 listed, all ${PAGED} after scrolling (${scrolled.ms} ms, ${paged.length} more pages), each once`);
});

step('"Mark all read" sets data-unread to 0 on every tab, and the server agrees', 40_000, async () => {
  const [first] = erin;
  const second = await newTab(ALLOWED, 'plain/', ERIN_TOKEN);
  erin.push(second);
  await eventually('the second tab is live', () => status(second), (s) => s === 'live', 10_000);
  await eventually(`the second tab reads ${PAGED}`, () => unread(second), (v) => v === String(PAGED), 5000);
  await inBell(second, '[data-testid="bell"]').click();
  await eventually('the second tab lists a page', () => rowCount(second), (n) => n === 20, 5000);

  await first.bringToFront();
  const markAll = inBell(first, '[data-testid="mark-all-read"]');
  assert.equal(await markAll.isDisabled(), false);
  await markAll.click();
  const done = await eventually('data-unread reads 0 on both tabs', () => Promise.all(erin.map(unread)), (v) => v.every((x) => x === '0'), 3000);
  await eventually('the server agrees', erinCounts, (c) => c.unread === 0 && c.total === PAGED, 3000);
  for (const [i, t] of erin.entries()) {
    await eventually(`tab ${i + 1}: every row is read`, () => t.evaluate(() =>
      Array.from(document.querySelector('herald-bell').shadowRoot.querySelectorAll('[data-testid="notification"]'), (li) => li.dataset.unread)),
    (v) => v.length > 0 && v.every((x) => x === 'false'), 3000);
    assert.equal(await inBell(t, '[data-testid="badge"]').isVisible(), false, `tab ${i + 1}: no badge`);
  }
  assert.equal(await markAll.isDisabled(), true, 'nothing left to mark');
  const third = await newTab(ALLOWED, 'plain/', ERIN_TOKEN);
  await eventually('a tab opened now reads 0 too', () => unread(third), (v) => v === '0', 10_000);
  await third.close();
  log(`mark all read: data-unread 0 on both tabs after ${done.ms} ms, ${PAGED} read on the server`);
});

step('keyboard: Enter opens, arrows move through the entries, Enter marks one read, Tab reaches its buttons, Escape closes', 60_000, async () => {
  const [page, other] = erin;
  const link = `${ALLOWED}/opened/${RUN}`;
  const ids = {};
  for (const [n, action_url] of [[1, null], [2, link], [3, null]]) {
    ids[n] = (await erinSend({ title: `Key ${n} · ${RUN}`, ...(action_url ? { action_url } : {}) })).notifications[0].id;
  }
  await eventually('data-unread reads 3 on both', () => Promise.all(erin.map(unread)), (v) => v.every((x) => x === '3'), 3000);
  await page.bringToFront();
  await inBell(page, '[data-testid="bell"]').click(); // closes it: the keyboard opens it
  await eventually('closed', () => inBell(page, '[data-testid="dropdown"]').isVisible(), (v) => !v, 2000);
  await page.evaluate(() => {
    window.__selected = [];
    document.addEventListener('herald-select', (e) => window.__selected.push(e.detail.id));
  });
  const bell = inBell(page, '[data-testid="bell"]');
  const focused = () => page.evaluate(() => document.querySelector('herald-bell').shadowRoot.activeElement?.dataset.testid ?? null);
  const tabStops = () => page.evaluate(() => Array.from(document.querySelector('herald-bell').shadowRoot.querySelectorAll('[data-testid="notification"]'))
    .filter((li) => li.tabIndex === 0).map((li) => li.dataset.id));

  await bell.focus();
  await page.keyboard.press('Enter');
  await eventually('Enter opened it', () => bell.getAttribute('aria-expanded'), (v) => v === 'true', 2000);
  assert.equal(await inBell(page, '[data-testid="dropdown"]').isVisible(), true);
  await eventually('the three on top', () => shownTitles(page), (t) => t[0] === `Key 3 · ${RUN}` && t[1] === `Key 2 · ${RUN}` && t[2] === `Key 1 · ${RUN}`, 3000);
  const lastId = await page.evaluate(() => Array.from(document.querySelector('herald-bell').shadowRoot.querySelectorAll('[data-testid="notification"]')).at(-1).dataset.id);
  const moves = [];
  for (const key of ['ArrowDown', 'ArrowDown', 'ArrowDown', 'ArrowUp', 'End', 'Home']) {
    await page.keyboard.press(key);
    moves.push(await focusedId(page));
  }
  assert.deepEqual(moves, [ids[3], ids[2], ids[1], ids[2], lastId, ids[3]], 'ArrowDown from the bell, then down, down, up, End, Home');
  assert.deepEqual(await tabStops(), [ids[3]], 'one tab stop: the focused entry');

  await page.keyboard.press('Enter');
  await eventually('Enter marked it read', () => inBell(page, `[data-testid="notification"][data-id="${ids[3]}"]`).getAttribute('data-unread'), (v) => v === 'false', 2000);
  assert.deepEqual(await page.evaluate(() => window.__selected), [ids[3]], 'and told the page (herald-select)');
  await eventually('data-unread reads 2 on both', () => Promise.all(erin.map(unread)), (v) => v.every((x) => x === '2'), 3000);
  await eventually('the server agrees', erinCounts, (c) => c.unread === 2, 3000);

  await page.keyboard.press('Tab');
  assert.equal(await focused(), 'mark-unread', 'Tab reaches the entry\'s first button');
  assert.equal(await focusedId(page), ids[3]);
  await page.keyboard.press('Shift+Tab');
  assert.equal(await focused(), 'notification', 'Shift+Tab goes back to the entry');

  await page.keyboard.press('Escape');
  await eventually('Escape closed it', () => bell.getAttribute('aria-expanded'), (v) => v === 'false', 2000);
  assert.equal(await inBell(page, '[data-testid="dropdown"]').isVisible(), false);
  assert.equal(await focused(), 'bell', 'the focus is back on the bell');

  await page.keyboard.press('Space');
  await eventually('Space opened it again', () => bell.getAttribute('aria-expanded'), (v) => v === 'true', 2000);
  await page.keyboard.press('ArrowDown');
  await page.keyboard.press('ArrowDown');
  assert.equal(await focusedId(page), ids[2]);
  await page.keyboard.press('Enter'); // it has an action_url: marked read, then there
  await page.waitForURL(link, { timeout: 5000 });
  await eventually('the server has it read', erinCounts, (c) => c.unread === 1, 3000);
  await eventually('the other tab reads 1', () => unread(other), (v) => v === '1', 3000);
  log('keyboard: Enter/Space open, arrows/Home/End move (one tab stop), Enter reads and opens, Tab/Shift+Tab, Escape closes to the bell');
  for (const t of erin) await t.close();
});
