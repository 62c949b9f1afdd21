// End-to-end test of the notification bell (web/) in a real headless Chromium.
//
//   cd web/test && npm ci && node bell.test.mjs
//
// Environment (all required unless noted):
//   HERALD_API_URL              e.g. http://127.0.0.1:8080 (serves the page at /demo; the
//                               page's <herald-bell> is the @herald/client package's)
//   HERALD_GATEWAY_URL          e.g. http://127.0.0.1:8081
//   HERALD_USER_TOKEN           user JWT for alice (sub = the recipient)
//   HERALD_SERVICE_TOKEN        service JWT with the `publish` scope
//   HERALD_RESTART_GATEWAY_CMD  shell command that kills the gateway and starts it again,
//                               returning once it is back (e.g. `scripts/restart gateway --kill9`);
//                               run with bash from the repository root
//   HERALD_ARTIFACTS_DIR        where screenshots and logs go (default: <repo>/test-artifacts)
//   HERALD_CHROMIUM             browser binary (optional, default /usr/bin/chromium)
//
// Scenario: two tabs of /demo; 3 notifications published -> both badges "3" within 1 s;
// mark one read in tab 1 -> tab 2 shows "2" within 2 s; kill + restart the gateway while
// publishing 2 more -> within 15 s both badges "4" and each dropdown lists every one of the
// 5 exactly once, 4 of them unread. Saves bell-dropdown.png. Exits non-zero on failure.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = path.resolve(HERE, '..', '..');

// ------------------------------------------------------------------ configuration

function required(name) {
  const v = process.env[name];
  if (!v || !v.trim()) {
    console.error(`bell.test.mjs: environment variable ${name} is required (see the header of this file)`);
    process.exit(2);
  }
  return v.trim();
}

const API = required('HERALD_API_URL').replace(/\/+$/, '');
const GATEWAY = required('HERALD_GATEWAY_URL').replace(/\/+$/, '');
const USER_TOKEN = required('HERALD_USER_TOKEN');
const SERVICE_TOKEN = required('HERALD_SERVICE_TOKEN');
const RESTART_CMD = required('HERALD_RESTART_GATEWAY_CMD');
const ARTIFACTS = path.resolve(process.env.HERALD_ARTIFACTS_DIR || path.join(REPO_ROOT, 'test-artifacts'));
const CHROMIUM = process.env.HERALD_CHROMIUM || '/usr/bin/chromium';

mkdirSync(ARTIFACTS, { recursive: true });
for (const f of ['bell-dropdown.png', 'bell-failure-tab1.png', 'bell-failure-tab2.png', 'bell-console.log', 'restart-gateway.log']) {
  rmSync(path.join(ARTIFACTS, f), { force: true }); // nothing stale from an earlier run
}

/** The `sub` of the user token: the recipient of what we publish (alice). */
function jwtSubject(token) {
  try {
    return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8')).sub || 'alice';
  } catch {
    return 'alice';
  }
}
const RECIPIENT = jwtSubject(USER_TOKEN);

// Unique per run, so earlier runs' notifications (same user, same database) never match.
const RUN = Math.random().toString(36).slice(2, 7);
const TITLES = [
  `Deploy to production finished · ${RUN}`,
  `Maya commented on “Q3 roadmap” · ${RUN}`,
  `Invoice INV-2041 is ready · ${RUN}`,
  `Weekly usage report is available · ${RUN}`,
  `Build #1182 passed on main · ${RUN}`,
];
const BODIES = [
  'api v2.14.0 is live in eu-west-1 and us-east-1.',
  '“Can we move the billing migration to week 2?”',
  '$1,240.00 due on Dec 1. Download the PDF from Billing.',
  'Active users up 12% week over week.',
  'All 1,204 checks passed in 4m 12s.',
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

async function http(method, url, token, body, extraHeaders = {}) {
  const headers = { authorization: `Bearer ${token}`, accept: 'application/json', ...extraHeaders };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  assert.ok(res.ok, `${method} ${url.replace(API, '')} → ${res.status} ${text.slice(0, 500)}`);
  return text ? JSON.parse(text) : null;
}

function publish(i) {
  return http('POST', `${API}/v1/notifications`, SERVICE_TOKEN, {
    recipients: [RECIPIENT],
    category: 'demo',
    title: TITLES[i],
    body: BODIES[i],
  }, { 'idempotency-key': randomUUID() });
}

/** The badge text ('' when hidden, i.e. 0 unread), inside <herald-bell>'s shadow DOM. */
const badge = (page) => page.evaluate(() => {
  const b = document.querySelector('herald-bell')?.shadowRoot?.querySelector('[data-testid="badge"]');
  if (!b || b.hidden || getComputedStyle(b).display === 'none') return '';
  return b.textContent.trim();
});
const status = (page) => page.evaluate(() => document.querySelector('[data-testid="status"]')?.textContent.trim() ?? null);
const dropdownOpen = (page) => page.locator('[data-testid="dropdown"]').isVisible();

async function openDropdown(page) {
  // Only the front tab renders frames; clicks wait for stable (rendered) elements.
  await page.bringToFront();
  if (!(await dropdownOpen(page))) await page.locator('[data-testid="bell"]').click();
  await eventually('dropdown opens', () => dropdownOpen(page), Boolean, 2000);
}

/** Every rendered notification: {id, title, unread}. */
const listed = (page) => page.evaluate(() =>
  Array.from(document.querySelector('herald-bell').shadowRoot.querySelectorAll('[data-testid="dropdown"] [data-testid="notification"]'), (li) => ({
    id: li.dataset.id,
    title: li.querySelector('[data-testid="title"]')?.textContent ?? '',
    unread: li.dataset.unread === 'true',
  })));

function summarize(items, titles) {
  const ours = items.filter((it) => titles.includes(it.title));
  const ids = items.map((it) => it.id);
  return {
    perTitle: titles.map((t) => ours.filter((it) => it.title === t).length),
    unread: ours.filter((it) => it.unread).length,
    duplicateIds: ids.filter((id, i) => ids.indexOf(id) !== i),
  };
}

/**
 * Runs the restart command with bash from the repository root. Output goes to a log file
 * rather than a pipe: a restarted gateway inherits the command's stdout, and a pipe would
 * keep this process waiting on it (and hand the gateway a SIGPIPE once we stop reading).
 * Resolves when the command itself exits.
 */
function runRestart(cmd, timeoutMs) {
  const logFile = path.join(ARTIFACTS, 'restart-gateway.log');
  const fd = openSync(logFile, 'w');
  const child = spawn(cmd, { shell: '/bin/bash', cwd: REPO_ROOT, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`HERALD_RESTART_GATEWAY_CMD still running after ${timeoutMs} ms (log: ${logFile})`));
    }, timeoutMs);
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) return resolve();
      let out = '';
      try { out = readFileSync(logFile, 'utf8').slice(-2000); } catch { /* none */ }
      reject(new Error(`HERALD_RESTART_GATEWAY_CMD failed (${signal || 'exit ' + code}):\n${out}`));
    });
  });
}

// ------------------------------------------------------------------ browser lifecycle

let browser;
let broken = null; // the name of the first failed step
let tab1;
let tab2;
const pageLogs = { tab1: [], tab2: [] };

before(async () => {
  // Fail fast, and clearly, when the stack is not up.
  for (const url of [`${API}/healthz`, `${GATEWAY}/healthz`]) {
    const res = await fetch(url).catch((e) => ({ ok: false, status: e.message }));
    assert.ok(res.ok, `${url} is not answering (${res.status}); is Herald running?`);
  }
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  tab1 = await context.newPage();
  tab2 = await context.newPage();
  for (const [name, page] of [['tab1', tab1], ['tab2', tab2]]) {
    page.on('console', (m) => pageLogs[name].push(`[${m.type()}] ${m.text()}`));
    page.on('pageerror', (e) => pageLogs[name].push(`[pageerror] ${e.message}`));
    page.on('requestfailed', (r) => pageLogs[name].push(`[requestfailed] ${r.method()} ${r.url().replace(/access_token=[^&]+/, 'access_token=…')} ${r.failure()?.errorText}`));
  }
});

after(async () => {
  if (broken) {
    writeFileSync(path.join(ARTIFACTS, 'bell-console.log'),
      Object.entries(pageLogs).map(([k, v]) => `== ${k}\n${v.join('\n')}`).join('\n\n') + '\n');
  }
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
      for (const [n, p] of [['tab1', tab1], ['tab2', tab2]]) {
        await p?.screenshot({ path: path.join(ARTIFACTS, `bell-failure-${n}.png`) }).catch(() => {});
      }
      throw e;
    }
  });
}

// ------------------------------------------------------------------ scenario

step('two tabs open the demo page and go live with a zero badge', 30_000, async () => {
  // Start from zero unread: this user may have notifications from earlier runs.
  await http('POST', `${API}/v1/me/notifications/read-all`, USER_TOKEN, {});

  const cfg = await http('GET', `${API}/demo/config.json`, USER_TOKEN);
  assert.equal(typeof cfg.gateway_url, 'string', '/demo/config.json has a gateway_url');
  if (cfg.gateway_url.replace(/\/+$/, '') !== GATEWAY) {
    log(`note: the page streams from ${cfg.gateway_url}, HERALD_GATEWAY_URL is ${GATEWAY}`);
  }

  // The token rides in the fragment (never sent to the server), read once by the page.
  const url = `${API}/demo#token=${encodeURIComponent(USER_TOKEN)}`;
  await Promise.all([tab1.goto(url), tab2.goto(url)]);
  for (const [name, page] of [['tab 1', tab1], ['tab 2', tab2]]) {
    await eventually(`${name} status is "live"`, () => status(page), (s) => s === 'live', 15_000);
    await eventually(`${name} badge is hidden (0 unread)`, () => badge(page), (b) => b === '', 5_000);
    assert.ok(!page.url().includes('token='), `${name}: the token left the address bar`);
  }
});

step('3 published notifications reach both badges within 1 s', 20_000, async () => {
  for (let i = 0; i < 3; i++) await publish(i);
  const [a, b] = await Promise.all([
    eventually('tab 1 badge reads "3"', () => badge(tab1), (v) => v === '3', 1000),
    eventually('tab 2 badge reads "3"', () => badge(tab2), (v) => v === '3', 1000),
  ]);
  log(`badges at "3" after ${a.ms} ms / ${b.ms} ms`);
});

step('mark read in tab 1 updates the badge in tab 2 within 2 s', 20_000, async () => {
  await openDropdown(tab1);
  await eventually('tab 1 lists the 3 notifications', () => listed(tab1),
    (items) => summarize(items, TITLES.slice(0, 3)).perTitle.every((n) => n === 1), 3000);

  const row = tab1.locator('[data-testid="notification"]', { hasText: TITLES[1] });
  await row.locator('[data-testid="mark-read"]').click();
  const t2 = await eventually('tab 2 badge reads "2"', () => badge(tab2), (v) => v === '2', 2000);
  await eventually('tab 1 badge reads "2"', () => badge(tab1), (v) => v === '2', 2000);
  await eventually('the row in tab 1 shows as read', () => row.getAttribute('data-unread'), (v) => v === 'false', 2000);
  log(`tab 2 badge at "2" after ${t2.ms} ms`);
});

step('gateway kill + restart while publishing: no loss, no duplicate', 180_000, async () => {
  const started = Date.now();
  let restartDone = false;
  const restart = runRestart(RESTART_CMD, 120_000);
  restart.then(() => { restartDone = true; }, () => { restartDone = true; });

  // Publish once the gateway is down (the tabs notice at once), before it is back if we can.
  const noticed = await eventually('tab 1 notices the gateway is gone', async () => restartDone || (await status(tab1)) === 'reconnecting',
    Boolean, 15_000, 10).then(() => !restartDone, () => false);
  log(noticed
    ? `gateway down after ${Date.now() - started} ms; publishing 2 while it restarts`
    : 'did not see the tabs disconnect before the restart finished; publishing anyway');
  await Promise.all([publish(3).then(() => publish(4)), restart]);
  log(`restart command done after ${Date.now() - started} ms`);

  const windowStart = Date.now();
  const deadline = windowStart + 15_000;
  const [a, b] = await Promise.all([
    eventually('tab 1 badge reads "4"', () => badge(tab1), (v) => v === '4', 15_000),
    eventually('tab 2 badge reads "4"', () => badge(tab2), (v) => v === '4', 15_000),
  ]);
  log(`badges at "4" ${a.ms} ms / ${b.ms} ms after the restart`);

  for (const [name, page] of [['tab 1', tab1], ['tab 2', tab2]]) {
    await openDropdown(page);
    const remaining = Math.max(3000, deadline - Date.now());
    let summary;
    try {
      await eventually(`${name} lists each of the 5 exactly once, 4 unread`, async () => (summary = summarize(await listed(page), TITLES)),
        (s) => s.perTitle.every((n) => n === 1) && s.unread === 4 && s.duplicateIds.length === 0, remaining);
    } catch (e) {
      e.message += `\n  per title: ${TITLES.map((t, i) => `${summary?.perTitle[i]}× ${t}`).join(' | ')}`;
      throw e;
    }
    assert.equal(await status(page), 'live', `${name} is live again`);
  }
});

step('screenshot: tab 1 with the dropdown open', 20_000, async () => {
  await tab1.bringToFront();
  await openDropdown(tab1);
  await tab1.evaluate(() => {
    document.activeElement?.blur();
    document.querySelector('herald-bell').shadowRoot.querySelector('[data-testid="list"]').scrollTop = 0;
  });
  await tab1.mouse.move(200, 700); // no hover state in the picture
  await sleep(300);
  const file = path.join(ARTIFACTS, 'bell-dropdown.png');
  await tab1.screenshot({ path: file });
  log(`saved ${file}`);
});
