// End-to-end test of the order tracker and the activity feed of the /demo page (web/)
// in a real headless Chromium.
//
//   cd web/test && npm ci && node --test tracker.test.mjs
//
// Environment (the same as bell.test.mjs; all required unless noted):
//   HERALD_API_URL              e.g. http://127.0.0.1:8080 (serves the page at /demo)
//   HERALD_GATEWAY_URL          e.g. http://127.0.0.1:8081
//   HERALD_USER_TOKEN           user JWT for alice whose `topics` claim grants `feed:*`
//                               (herald-token --sub alice --topics 'feed:*')
//   HERALD_SERVICE_TOKEN        service JWT with the `publish` scope
//   HERALD_RESTART_GATEWAY_CMD  not used here (accepted, so one environment runs both files)
//   HERALD_ARTIFACTS_DIR        where screenshots and logs go (default: <repo>/test-artifacts)
//   HERALD_CHROMIUM             browser binary (optional, default /usr/bin/chromium)
//
// Scenario: the service creates an order for alice (unique id per run) and the page opens
// with ?order=<id>&feed=<unique feed>: the tracker shows `placed`, one EventSource carries
// user, order and feed topics. The order is advanced to paid, packed, shipped,
// out_for_delivery and delivered, ~200 ms apart: each step shows in the tracker within 2 s
// of its request, and in the end the 6 steps are done/current in order, each in the history
// once. 3 activities posted to the feed appear live, newest first; re-posting one with its
// foreign_id replaces its row. Saves tracker-and-feed.png. Exits non-zero on failure.
//
// Runs after (not alongside) bell.test.mjs: both use alice's inbox, and this file's order
// changes put notifications in it (`node --test --test-concurrency=1 …`).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = path.resolve(HERE, '..', '..');

// ------------------------------------------------------------------ configuration

function required(name) {
  const v = process.env[name];
  if (!v || !v.trim()) {
    console.error(`tracker.test.mjs: environment variable ${name} is required (see the header of this file)`);
    process.exit(2);
  }
  return v.trim();
}

const API = required('HERALD_API_URL').replace(/\/+$/, '');
const GATEWAY = required('HERALD_GATEWAY_URL').replace(/\/+$/, '');
const USER_TOKEN = required('HERALD_USER_TOKEN');
const SERVICE_TOKEN = required('HERALD_SERVICE_TOKEN');
const ARTIFACTS = path.resolve(process.env.HERALD_ARTIFACTS_DIR || path.join(REPO_ROOT, 'test-artifacts'));
const CHROMIUM = process.env.HERALD_CHROMIUM || '/usr/bin/chromium';

mkdirSync(ARTIFACTS, { recursive: true });
for (const f of ['tracker-and-feed.png', 'tracker-failure.png', 'tracker-console.log']) {
  rmSync(path.join(ARTIFACTS, f), { force: true }); // nothing stale from an earlier run
}

function jwtClaims(token) {
  try {
    return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8')) || {};
  } catch {
    return {};
  }
}
const CLAIMS = jwtClaims(USER_TOKEN);
const CUSTOMER = typeof CLAIMS.sub === 'string' ? CLAIMS.sub : 'alice';

// Unique per run, so earlier runs' orders and activities (same database) never match.
const RUN = String(Date.now() % 1e8).padStart(8, '0');
const ORDER_ID = `A-${RUN}`;
const FEED = `team-${Number(RUN).toString(36)}`;

const HAPPY_PATH = ['placed', 'paid', 'packed', 'shipped', 'out_for_delivery', 'delivered'];
const LABELS = {
  placed: 'Placed', paid: 'Paid', packed: 'Packed', shipped: 'Shipped',
  out_for_delivery: 'Out for delivery', delivered: 'Delivered',
};
const ADVANCES = [
  { status: 'paid', note: 'Visa ending in 4242 was charged $129.00' },
  { status: 'packed', note: 'Packed at the Rotterdam warehouse' },
  { status: 'shipped', note: 'Handed over to DHL Express', data: { carrier: 'DHL Express', tracking: 'JD0146000039' } },
  { status: 'out_for_delivery', note: 'Your driver is 3 stops away' },
  { status: 'delivered', note: 'Left with the concierge' },
];
const ACTIVITIES = [
  { actor: 'user:maya', verb: 'commented', object: 'Q3 roadmap', target: 'Planning', foreign_id: `c-${RUN}-1` },
  { actor: 'user:sam', verb: 'merged', object: 'PR #482 “Faster checkout”', target: 'acme/web', foreign_id: `c-${RUN}-2` },
  { actor: 'user:priya', verb: 'deployed', object: 'api v2.14.0', target: 'production', foreign_id: `c-${RUN}-3` },
];

// ------------------------------------------------------------------ helpers

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (...a) => console.log('  ·', ...a);
const show = (v) => (v instanceof Error ? `error: ${v.message}` : JSON.stringify(v));

/** Polls `probe` until `check(value)` holds; fails after `timeoutMs` with the last value seen. */
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
  const res = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  assert.ok(res.ok, `${method} ${url.replace(API, '')} → ${res.status} ${text.slice(0, 500)}`);
  return text ? JSON.parse(text) : null;
}

/** What the page shows: status pill, steps, history, live flags, activities, open streams. */
const snapshot = (page) => page.evaluate(() => {
  const q = (s) => document.querySelector(s);
  const tracker = q('[data-testid="order-tracker"]');
  const pill = q('[data-testid="order-status"]');
  const feed = q('[data-testid="feed"]');
  return {
    connection: q('[data-testid="status"]')?.textContent.trim() ?? null,
    trackerLive: tracker?.dataset.live === 'true',
    feedLive: feed?.dataset.live === 'true',
    status: pill && !pill.hidden ? pill.textContent.trim() : null,
    statusKey: pill && !pill.hidden ? pill.dataset.status : null,
    steps: Array.from(document.querySelectorAll('[data-testid="order-step"]'), (li) => `${li.dataset.status}:${li.dataset.state}`),
    history: Array.from(document.querySelectorAll('#order-history [data-status]'), (li) => li.dataset.status),
    activities: Array.from(document.querySelectorAll('[data-testid="feed"] [data-testid="activity"]'), (li) => ({
      id: li.dataset.id,
      text: li.querySelector('[data-testid="activity-text"]')?.textContent ?? '',
    })),
    openStreams: (window.__eventSources || []).filter((es) => es.readyState !== 2).length,
    streamsCreated: (window.__eventSources || []).length,
  };
});

// ------------------------------------------------------------------ browser lifecycle

let browser;
let page;
let broken = null; // the name of the first failed step
const pageLog = [];

before(async () => {
  for (const url of [`${API}/healthz`, `${GATEWAY}/healthz`]) {
    const res = await fetch(url).catch((e) => ({ ok: false, status: e.message }));
    assert.ok(res.ok, `${url} is not answering (${res.status}); is Herald running?`);
  }
  const topics = Array.isArray(CLAIMS.topics) ? CLAIMS.topics.join(' ') : String(CLAIMS.topics || '');
  if (!/(^|[\s,])feed:(\*|[^\s,]*)/.test(topics)) {
    log(`note: HERALD_USER_TOKEN has no feed:* in its topics claim (${JSON.stringify(topics)}); ` +
      'mint it with --topics \'feed:*\' or the feed panel will only show its "private" note');
  }
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  // Count the EventSources the page opens: it must use one for every topic.
  await context.addInitScript(() => {
    const Native = window.EventSource;
    window.__eventSources = [];
    window.EventSource = class extends Native {
      constructor(...args) {
        super(...args);
        window.__eventSources.push(this);
      }
    };
  });
  page = await context.newPage();
  page.on('console', (m) => pageLog.push(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => pageLog.push(`[pageerror] ${e.message}`));
  page.on('requestfailed', (r) => pageLog.push(`[requestfailed] ${r.method()} ${r.url().replace(/access_token=[^&]+/, 'access_token=…')} ${r.failure()?.errorText}`));
});

after(async () => {
  if (broken) writeFileSync(path.join(ARTIFACTS, 'tracker-console.log'), pageLog.join('\n') + '\n');
  await browser?.close();
});

/** A step of the scenario; once one fails the rest are skipped (they depend on it). */
function step(name, timeout, fn) {
  test(name, { timeout }, async (t) => {
    if (broken) return t.skip(`after failed step: ${broken}`);
    try {
      await fn(t);
    } catch (e) {
      broken = name;
      await page?.screenshot({ path: path.join(ARTIFACTS, 'tracker-failure.png'), fullPage: true }).catch(() => {});
      try {
        e.message += `\n  page: ${JSON.stringify(await snapshot(page))}`;
      } catch { /* the page is gone */ }
      throw e;
    }
  });
}

// ------------------------------------------------------------------ scenario

step('the page opens on a new order and feed: tracker at "placed", one live stream', 30_000, async () => {
  const order = await http('PUT', `${API}/v1/orders/${encodeURIComponent(ORDER_ID)}`, SERVICE_TOKEN, {
    customer_id: CUSTOMER,
    data: { total: '129.00', currency: 'USD', items: 3 },
  });
  assert.equal(order.status, 'placed');

  await page.goto(`${API}/demo?order=${encodeURIComponent(ORDER_ID)}&feed=${encodeURIComponent(FEED)}#token=${encodeURIComponent(USER_TOKEN)}`);
  const { value, ms } = await eventually('tracker shows "placed" and both panels are live',
    () => snapshot(page),
    (s) => s.connection === 'live' && s.trackerLive && s.feedLive && s.statusKey === 'placed',
    15_000);
  log(`live with order and feed topics after ${ms} ms`);
  assert.equal(value.status, LABELS.placed);
  assert.deepEqual(value.steps, HAPPY_PATH.map((s, i) => `${s}:${i === 0 ? 'current' : 'todo'}`));
  assert.deepEqual(value.history, ['placed']);
  assert.equal(value.openStreams, 1, 'one EventSource carries every topic');
  log(`EventSources opened so far: ${value.streamsCreated}`);
  assert.ok(!(await page.url()).includes('token='), 'the token left the address bar');
});

step('advancing the order moves the tracker live, each step within 2 s', 30_000, async () => {
  // Record, in the page, when each step first stops being "todo".
  await page.evaluate(() => {
    window.__reached = {};
    const record = () => {
      for (const li of document.querySelectorAll('[data-testid="order-step"]')) {
        if (li.dataset.state !== 'todo' && !(li.dataset.status in window.__reached)) window.__reached[li.dataset.status] = Date.now();
      }
    };
    record();
    new MutationObserver(record).observe(document.querySelector('[data-testid="order-tracker"]'),
      { subtree: true, childList: true, attributes: true });
  });

  const sent = {};
  for (const adv of ADVANCES) {
    sent[adv.status] = Date.now();
    const o = await http('POST', `${API}/v1/orders/${encodeURIComponent(ORDER_ID)}/status`, SERVICE_TOKEN, adv);
    assert.equal(o.status, adv.status);
    await sleep(200);
  }

  const last = ADVANCES[ADVANCES.length - 1].status;
  await eventually('every step has been reached in the page', () => page.evaluate(() => window.__reached),
    (r) => ADVANCES.every((a) => a.status in r), Math.max(500, sent[last] + 2000 - Date.now()));
  const reached = await page.evaluate(() => window.__reached);
  const lat = ADVANCES.map((a) => [a.status, reached[a.status] - sent[a.status]]);
  log(`step latency: ${lat.map(([s, ms]) => `${s} ${ms} ms`).join(', ')}`);
  for (const [s, ms] of lat) assert.ok(ms <= 2000, `${s} showed ${ms} ms after its request (limit 2000 ms)`);
  for (let i = 1; i < ADVANCES.length; i++) {
    assert.ok(reached[ADVANCES[i].status] >= reached[ADVANCES[i - 1].status], `${ADVANCES[i].status} did not show before ${ADVANCES[i - 1].status}`);
  }

  const { value } = await eventually('the tracker ends at "delivered"', () => snapshot(page),
    (s) => s.statusKey === 'delivered', 2000);
  assert.equal(value.status, LABELS.delivered);
  assert.equal(value.steps.length, 6);
  value.steps.forEach((st, i) => {
    const [s, state] = st.split(':');
    assert.equal(s, HAPPY_PATH[i], `step ${i + 1} is ${HAPPY_PATH[i]}`);
    assert.ok(state === 'done' || state === 'current', `${st}: every step is done or current`);
  });
  assert.deepEqual(value.steps.slice(0, 5).map((st) => st.split(':')[1]), ['done', 'done', 'done', 'done', 'done']);
  assert.deepEqual(value.history, [...HAPPY_PATH].reverse(), 'the history lists each status once, newest first');
  const note = await page.locator('[data-testid="order-status-note"]').textContent();
  assert.equal(note.trim(), ADVANCES[ADVANCES.length - 1].note);
  assert.equal(value.openStreams, 1, 'still one EventSource');
});

step('activities posted to the feed appear live, newest first', 30_000, async () => {
  const ids = [];
  for (const [i, body] of ACTIVITIES.entries()) {
    const t0 = Date.now();
    const a = await http('POST', `${API}/v1/feeds/${encodeURIComponent(FEED)}/activities`, SERVICE_TOKEN, body);
    ids.unshift(a.id);
    const { ms } = await eventually(`activity ${i + 1} is listed`, () => snapshot(page),
      (s) => s.activities.some((x) => x.id === a.id), 2000);
    log(`activity ${i + 1} listed ${Date.now() - t0 - ms} + ${ms} ms after its request`);
    await sleep(200);
  }
  const { value } = await eventually('the feed lists the 3 activities newest first', () => snapshot(page),
    (s) => JSON.stringify(s.activities.map((x) => x.id)) === JSON.stringify(ids), 2000);
  assert.match(value.activities[0].text, /priya deployed api v2\.14\.0 in production/);
  assert.match(value.activities[2].text, /maya commented on Q3 roadmap in Planning/);

  // Same foreign_id, new content: activity.updated replaces the row in place.
  const updated = await http('POST', `${API}/v1/feeds/${encodeURIComponent(FEED)}/activities`, SERVICE_TOKEN,
    { ...ACTIVITIES[0], object: 'Q3 roadmap (v2)' });
  assert.equal(updated.id, ids[2]);
  await eventually('the updated activity replaces its row', () => snapshot(page),
    (s) => s.activities.length === 3 && /Q3 roadmap \(v2\)/.test(s.activities[2].text) && s.activities[2].id === ids[2], 2000);
});

step('screenshot: the dashboard with the tracker and the feed', 20_000, async () => {
  await page.mouse.move(1200, 780); // no hover state in the picture
  await page.evaluate(() => {
    document.activeElement?.blur();
    window.scrollTo(0, 0);
  });
  await sleep(1800); // let the "fresh" highlights fade
  const file = path.join(ARTIFACTS, 'tracker-and-feed.png');
  await page.screenshot({ path: file, fullPage: true });
  log(`saved ${file}`);
});
