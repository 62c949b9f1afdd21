// The bell's settings (preferences per category, and "Enable desktop notifications")
// and the demo's service worker, in a real headless Chromium against a real Herald
// stack with Web Push configured.
//
//   run by scripts/browser-test, after bell.test.mjs and tracker.test.mjs
//
// Environment (all required unless noted):
//   HERALD_API_URL, HERALD_GATEWAY_URL   the stack; the API serves /demo
//   HERALD_PREFS_USER_TOKEN              user JWT for a user of this test alone (carol)
//   HERALD_SERVICE_TOKEN                 service JWT with the `publish` scope
//   HERALD_VAPID_PUBLIC_KEY              the stack's VAPID public key (base64url)
//   HERALD_TEST_PUSH_PYTHON              a python with http_ece and cryptography, for the
//                                        push service stand-in (crates/test-support/push_service.py)
//   HERALD_ARTIFACTS_DIR                 screenshots (default <repo>/test-artifacts)
//   HERALD_CHROMIUM                      optional, default /usr/bin/chromium
// The stack must run with HERALD_PUSH_ALLOWED_HOSTS=127.0.0.1 and
// HERALD_PUSH_ALLOW_INSECURE=true, so that Herald's worker may push to the stand-in.
//
// What is real and what is not. Chromium's pushManager.subscribe() asks Google's push
// service (FCM) for an endpoint, and there is no internet here. So the tab in which
// desktop notifications are turned on gets the one stand-in the browser allows: its
// PushManager returns a subscription made by the test's push service (an endpoint on
// 127.0.0.1 and keys whose private half only that service holds). Everything else is
// the product: the bell's switch, Herald's API and worker, the encrypted push, its
// decryption by an implementation independent of Herald's (the stand-in, with
// http_ece), and the demo's real service worker, into which Chromium delivers the
// decrypted push (DevTools' ServiceWorker.deliverPushMessage, the browser's own push
// path from there on) and which shows the system notification. Other tabs use the real
// pushManager: with no push service to reach it must fail with a clear message.
//
// Steps (each depends on the one before):
//   1. the settings view lists the server's categories, the required one locked;
//   2. toggling saves (the server has it), a second tab's open settings follow live,
//      Space flips a switch, a locked switch sends nothing, a muted category is not shown;
//   3. a category made required behind the panel's back: the mute is refused (422),
//      the panel says so, undoes it and shows the lock;
//   4. the switch registers the service worker for the whole demo, subscribes with the
//      server's VAPID key and POSTs the subscription (the server lists it);
//   5. screenshot of the settings view with the switch on (preferences.png);
//   6. a notification sent to the user reaches the push service encrypted; decrypted, it
//      becomes a system notification from the service worker (title, body, tag, data),
//      once per id, and the app badge shows the unread count;
//   7. the switch turns off: DELETE (the server forgets it) and unsubscribe;
//   8. the real pushManager with no push service: a clear error, not a spinner;
//      notifications blocked: the switch says so.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = path.resolve(HERE, '..', '..');

function required(name) {
  const v = process.env[name];
  if (!v || !v.trim()) {
    console.error(`preferences.test.mjs: environment variable ${name} is required (see the header of this file)`);
    process.exit(2);
  }
  return v.trim();
}

const API = required('HERALD_API_URL').replace(/\/+$/, '');
const GATEWAY = required('HERALD_GATEWAY_URL').replace(/\/+$/, '');
const USER_TOKEN = required('HERALD_PREFS_USER_TOKEN');
const SERVICE_TOKEN = required('HERALD_SERVICE_TOKEN');
const VAPID_PUBLIC_KEY = required('HERALD_VAPID_PUBLIC_KEY');
const PUSH_PYTHON = required('HERALD_TEST_PUSH_PYTHON');
const ARTIFACTS = path.resolve(process.env.HERALD_ARTIFACTS_DIR || path.join(REPO_ROOT, 'test-artifacts'));
const CHROMIUM = process.env.HERALD_CHROMIUM || '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

mkdirSync(ARTIFACTS, { recursive: true });
for (const f of ['preferences.png', 'preferences-console.log']) rmSync(path.join(ARTIFACTS, f), { force: true });
for (let i = 1; i <= 3; i++) rmSync(path.join(ARTIFACTS, `preferences-failure-${i}.png`), { force: true });

const USER = JSON.parse(Buffer.from(USER_TOKEN.split('.')[1], 'base64url').toString('utf8')).sub;
const RUN = Math.random().toString(36).slice(2, 7);
const DEMO = `${API}/demo#token=${encodeURIComponent(USER_TOKEN)}`;

// ------------------------------------------------------------------ helpers

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
  const headers = { accept: 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method === 'POST' && url.includes('/v1/')) headers['idempotency-key'] = randomUUID();
  const res = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  assert.ok(res.ok, `${method} ${url.replace(API, '')} → ${res.status} ${text.slice(0, 500)}`);
  return text ? JSON.parse(text) : null;
}

const prefs = async () => (await http('GET', `${API}/v1/me/preferences`, USER_TOKEN)).categories;
const subscriptions = async () => (await http('GET', `${API}/v1/me/push-subscriptions`, USER_TOKEN)).subscriptions;
const setCategory = (name, settings) => http('PUT', `${API}/v1/categories/${name}`, SERVICE_TOKEN, settings);

// ------------------------------------------------------------------ the push service stand-in

let pushService = null;
async function startPushService() {
  const child = spawn(PUSH_PYTHON, [path.join(REPO_ROOT, 'crates', 'test-support', 'push_service.py')], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      const m = /^(\d+)\n/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', (code) => reject(new Error(`push_service.py exited (${code}) before it listened`)));
    child.once('error', reject);
  });
  return { child, url: `http://127.0.0.1:${port}` };
}

// ------------------------------------------------------------------ the bell's settings, in a page

const inBell = (page, selector) => page.locator(`herald-bell ${selector}`);
const checked = (locator) => locator.getAttribute('aria-checked');
const row = (page, category) => inBell(page, `[data-testid="category"][data-category="${category}"]`);
const toggle = (page, category, channel) => row(page, category).locator(`[data-testid="${channel}"]`);

async function openSettings(page) {
  await page.bringToFront();
  if (!(await inBell(page, '[data-testid="dropdown"]').isVisible())) await inBell(page, '[data-testid="bell"]').click();
  if (!(await inBell(page, '[data-testid="settings"]').isVisible())) await inBell(page, '[data-testid="settings-button"]').click();
  await eventually('the settings view is open', () => inBell(page, '[data-testid="settings"]').isVisible(), Boolean, 3000);
}

/** What the settings view shows: {category: {in_app, web_push, required}} from the DOM. */
const shown = (page) => page.evaluate(() => {
  const out = {};
  const root = document.querySelector('herald-bell').shadowRoot;
  for (const tr of root.querySelectorAll('[data-testid="category"]')) {
    const sw = (c) => tr.querySelector(`[data-testid="${c}"]`);
    out[tr.dataset.category] = {
      in_app: sw('in_app').getAttribute('aria-checked') === 'true',
      web_push: sw('web_push').getAttribute('aria-checked') === 'true',
      required: tr.dataset.required === 'true' && !tr.querySelector('[data-testid="required"]').hidden &&
        sw('in_app').getAttribute('aria-disabled') === 'true' && sw('web_push').getAttribute('aria-disabled') === 'true',
      name: tr.querySelector('[data-testid="category-name"]').textContent,
    };
  }
  return out;
});

const pushSwitch = (page) => inBell(page, '[data-testid="push-switch"]');
const pushHint = (page) => inBell(page, '[data-testid="push-hint"]').textContent();
const pushError = (page) => page.evaluate(() => {
  const e = document.querySelector('herald-bell').shadowRoot.querySelector('[data-testid="push-error"]');
  return e && !e.hidden ? e.textContent : '';
});

// ------------------------------------------------------------------ browser lifecycle

let browser;
let context; // the tabs with the push service stand-in's PushManager
let tab1;
let tab2;
let cdp;
let broken = null;
const consoleLines = [];
const registrations = new Map(); // scopeURL -> registrationId, from DevTools

function watch(page, name) {
  page.on('console', (m) => consoleLines.push(`${name} [${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => consoleLines.push(`${name} [pageerror] ${e.message}`));
}

let fakeSubscription;

before(async () => {
  for (const url of [`${API}/healthz`, `${GATEWAY}/healthz`]) {
    const res = await fetch(url).catch((e) => ({ ok: false, status: e.message }));
    assert.ok(res.ok, `${url} is not answering (${res.status})`);
  }
  pushService = await startPushService();
  fakeSubscription = await http('POST', `${pushService.url}/subscriptions`);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
  context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  await context.grantPermissions(['notifications'], { origin: API });
  // The push service stand-in, as the browser's PushManager would hand it out (see the
  // header); and a record of the page's app-badge calls.
  await context.addInitScript(({ subscription }) => {
    const b64url = (buf) => btoa(String.fromCharCode(...new Uint8Array(buf))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
    const state = (window.__push = { calls: [], subscription: null, badges: [] });
    PushManager.prototype.subscribe = async function (options) {
      const k = options.applicationServerKey;
      const key = k instanceof ArrayBuffer ? k : k.buffer.slice(k.byteOffset, k.byteOffset + k.byteLength);
      state.calls.push({ op: 'subscribe', userVisibleOnly: options.userVisibleOnly, key: b64url(key) });
      state.subscription = {
        endpoint: subscription.endpoint,
        expirationTime: null,
        options: { userVisibleOnly: true, applicationServerKey: key },
        toJSON: () => JSON.parse(JSON.stringify(subscription)),
        unsubscribe: async () => {
          state.calls.push({ op: 'unsubscribe' });
          state.subscription = null;
          return true;
        },
      };
      return state.subscription;
    };
    PushManager.prototype.getSubscription = async function () {
      return state.subscription;
    };
    const setAppBadge = navigator.setAppBadge?.bind(navigator);
    const clearAppBadge = navigator.clearAppBadge?.bind(navigator);
    navigator.setAppBadge = (n) => { state.badges.push(n); return setAppBadge ? setAppBadge(n) : Promise.resolve(); };
    navigator.clearAppBadge = () => { state.badges.push(0); return clearAppBadge ? clearAppBadge() : Promise.resolve(); };
  }, { subscription: fakeSubscription });
  tab1 = await context.newPage();
  tab2 = await context.newPage();
  watch(tab1, 'tab1');
  watch(tab2, 'tab2');
  cdp = await context.newCDPSession(tab1);
  cdp.on('ServiceWorker.workerRegistrationUpdated', (e) => {
    for (const r of e.registrations) if (!r.isDeleted) registrations.set(r.scopeURL, r.registrationId);
  });
  await cdp.send('ServiceWorker.enable');
});

after(async () => {
  writeFileSync(path.join(ARTIFACTS, 'preferences-console.log'), consoleLines.join('\n') + '\n');
  await browser?.close();
  pushService?.child.kill();
});

function step(name, timeout, fn) {
  test(name, { timeout }, async (t) => {
    if (broken) return t.skip(`after failed step: ${broken}`);
    try {
      await fn(t);
    } catch (e) {
      broken = name;
      for (const [i, p] of (context?.pages() || []).entries()) {
        await p.screenshot({ path: path.join(ARTIFACTS, `preferences-failure-${i + 1}.png`) }).catch(() => {});
      }
      throw e;
    }
  });
}

// ------------------------------------------------------------------ scenario

const DEFAULTS = {
  billing: { in_app: true, web_push: true },
  comment: { in_app: true, web_push: true },
  mention: { in_app: true, web_push: false },
  product_updates: { in_app: true, web_push: false },
  security: { in_app: true, web_push: true, required: true },
};

step('the settings view lists the server\'s categories, and locks the required one', 40_000, async () => {
  for (const [name, settings] of Object.entries(DEFAULTS)) await setCategory(name, settings);
  const server = await prefs();
  for (const name of Object.keys(DEFAULTS)) assert.ok(server[name], `the server lists ${name}`);

  await Promise.all([tab1.goto(DEMO), tab2.goto(DEMO)]);
  for (const page of [tab1, tab2]) {
    await eventually('the bell is live', () => page.locator('herald-bell').getAttribute('data-status'), (s) => s === 'live', 15_000);
  }
  await openSettings(tab1);
  const { value } = await eventually('tab 1 shows every category as the server has it', () => shown(tab1),
    (v) => Object.keys(server).every((c) => v[c] && v[c].in_app === server[c].in_app && v[c].web_push === server[c].web_push && v[c].required === server[c].required),
    5000);
  assert.deepEqual(Object.keys(value), Object.keys(server).sort(), 'one row per category, sorted');
  assert.equal(value.security.required, true, 'security is locked');
  assert.equal(value.comment.required, false);
  assert.equal(value.product_updates.name, 'Product updates');
  // The desktop column is there: this server does Web Push.
  assert.equal(await toggle(tab1, 'comment', 'web_push').isVisible(), true);
  log(`settings list ${Object.keys(value).join(', ')}; security locked`);
});

step('toggling saves, and a second tab\'s open settings follow live', 40_000, async () => {
  await openSettings(tab2);
  await eventually('tab 2 shows comment in app on', () => shown(tab2), (v) => v.comment?.in_app === true, 5000);

  await openSettings(tab1);
  const t0 = Date.now();
  await toggle(tab1, 'comment', 'in_app').click();
  assert.equal(await checked(toggle(tab1, 'comment', 'in_app')), 'false', 'the switch flips at once');
  await eventually('the server has comment in app off', prefs, (p) => p.comment.in_app === false, 3000);
  const live = await eventually('tab 2 follows (preferences.updated)', () => shown(tab2), (v) => v.comment?.in_app === false, 2000);
  log(`comment in app off: tab 2 followed ${Date.now() - t0} ms after the click (${live.ms} ms of polling)`);

  // The keyboard: Space on a focused switch.
  await tab1.bringToFront();
  await toggle(tab1, 'mention', 'web_push').focus();
  await tab1.keyboard.press('Space');
  await eventually('the server has mention desktop on', prefs, (p) => p.mention.web_push === true, 3000);
  await eventually('tab 2 follows', () => shown(tab2), (v) => v.mention?.web_push === true, 2000);

  // A locked switch sends nothing, and says why.
  const puts = [];
  const onRequest = (r) => { if (r.method() === 'PUT' && r.url().endsWith('/v1/me/preferences')) puts.push(r.url()); };
  tab1.on('request', onRequest);
  // It stays focusable (aria-disabled, not disabled), so its reason can be read.
  await toggle(tab1, 'security', 'in_app').focus();
  assert.equal(await tab1.evaluate(() => document.querySelector('herald-bell').shadowRoot.activeElement?.dataset.category), 'security');
  await tab1.keyboard.press('Space');
  await eventually('the panel says security is required', () => inBell(tab1, '[data-testid="preferences-error"]').textContent(),
    (t) => /required/i.test(t) && /Security/.test(t), 2000);
  await sleep(300);
  tab1.off('request', onRequest);
  assert.deepEqual(puts, [], 'no PUT for a locked switch');
  assert.equal((await prefs()).security.in_app, true);

  // What the switch means: a muted category no longer reaches the bell.
  const before = await tab1.locator('herald-bell').getAttribute('data-unread');
  const sent = await http('POST', `${API}/v1/notifications`, SERVICE_TOKEN, { recipients: [USER], category: 'comment', title: `Muted comment · ${RUN}` });
  assert.equal(sent.delivery.in_app.suppressed, 1, `the server suppressed it: ${JSON.stringify(sent.delivery)}`);
  await sleep(800);
  assert.equal(await tab1.locator('herald-bell').getAttribute('data-unread'), before, 'the bell did not ring');
});

step('a mute the server refuses (a category made required meanwhile) shows the 422 and the lock', 30_000, async () => {
  await openSettings(tab1);
  assert.equal((await shown(tab1)).mention.required, false, 'tab 1 still shows mention unlocked');
  // The service makes mention required; nothing tells the open panel.
  await setCategory('mention', { in_app: true, web_push: false, required: true });

  const answer = tab1.waitForResponse((r) => r.request().method() === 'PUT' && r.url().endsWith('/v1/me/preferences'));
  await toggle(tab1, 'mention', 'in_app').click();
  const res = await answer;
  assert.equal(res.status(), 422, 'the server refused the mute');
  const problem = await res.json();
  assert.ok(problem.errors.some((e) => e.field === 'categories.mention'), `the 422 names categories.mention: ${JSON.stringify(problem)}`);
  const { value: text } = await eventually('the panel shows the refusal', () => inBell(tab1, '[data-testid="preferences-error"]').textContent(),
    (t) => t.includes('categories.mention') && /required/.test(t), 2000);
  log(`refusal shown: “${text}”`);
  await eventually('the switch is back on, and mention is locked now', () => shown(tab1), (v) => v.mention.in_app === true && v.mention.required === true, 3000);
  assert.equal((await prefs()).mention.in_app, true, 'nothing changed on the server');
});

let registrationId;

step('the desktop notifications switch registers the service worker and subscribes', 40_000, async () => {
  assert.deepEqual(await subscriptions(), [], 'no subscription yet');
  await openSettings(tab1);
  const sw = pushSwitch(tab1);
  await eventually('the switch is off and usable', async () => [await checked(sw), await sw.isDisabled(), await pushHint(tab1)],
    ([c, d, h]) => c === 'false' && d === false && /tab is closed/.test(h), 5000);
  await sw.click();
  await eventually('the switch is on', () => checked(sw), (c) => c === 'true', 10_000);
  assert.match(await pushHint(tab1), /On for this browser/);

  const calls = await tab1.evaluate(() => window.__push.calls);
  assert.deepEqual(calls, [{ op: 'subscribe', userVisibleOnly: true, key: VAPID_PUBLIC_KEY }],
    'subscribed once, user-visible, with the server\'s VAPID key');
  const listed = await subscriptions();
  assert.deepEqual(listed.map((s) => s.endpoint), [fakeSubscription.endpoint], 'the server has this browser\'s endpoint');

  // The demo's service worker: its scope is the whole demo, the page included.
  const reg = await eventually('the service worker is active', () => tab1.evaluate(async () => {
    const r = await navigator.serviceWorker.getRegistration('/demo');
    return r && r.active ? { scope: r.scope, script: r.active.scriptURL } : null;
  }), Boolean, 10_000);
  assert.equal(reg.value.scope, `${API}/demo`);
  assert.equal(reg.value.script, `${API}/demo/herald-sw.js`);
  registrationId = (await eventually('DevTools knows the registration', () => registrations.get(`${API}/demo`), (v) => v !== undefined, 5000)).value;

  // The panel reads the same state afresh (the server lists this endpoint).
  await inBell(tab1, '[data-testid="settings-back"]').click();
  await inBell(tab1, '[data-testid="settings-button"]').click();
  await sleep(500);
  assert.equal(await checked(pushSwitch(tab1)), 'true', 'still on when the view opens again');
});

step('screenshot: the settings view, desktop notifications on', 20_000, async () => {
  await openSettings(tab1);
  await tab1.evaluate(() => document.activeElement?.blur());
  await tab1.mouse.move(200, 760); // no hover state in the picture
  await sleep(400);
  const file = path.join(ARTIFACTS, 'preferences.png');
  await tab1.screenshot({ path: file });
  log(`saved ${file}`);
});

step('a notification for the user is pushed, decrypted, and shown by the service worker with the app badge', 60_000, async () => {
  // No tab is looking at the list (a notification seen there is not pushed).
  for (const page of [tab1, tab2]) {
    await page.bringToFront();
    await page.mouse.click(40, 500); // a click outside the bell closes it
  }
  await eventually('no dropdown is open', () => Promise.all([tab1, tab2].map((p) => inBell(p, '[data-testid="dropdown"]').isVisible())),
    (v) => v.every((x) => !x), 2000);
  const received0 = (await http('GET', `${pushService.url}/received`)).length;
  const title = `Deploy finished · ${RUN}`;
  const actionUrl = `${API}/demo?deploy=${RUN}`;
  const sent = await http('POST', `${API}/v1/notifications`, SERVICE_TOKEN, {
    recipients: [USER], category: 'deploy', title, body: 'api v2.15 is live.', action_url: actionUrl,
  });
  assert.equal(sent.delivery.web_push.queued, 1, `one push queued: ${JSON.stringify(sent.delivery)}`);
  const id = sent.notifications[0].id;

  const { value: pushes, ms } = await eventually('the push service received the push', async () => (await http('GET', `${pushService.url}/received`)).slice(received0),
    (r) => r.length >= 1, 15_000, 50);
  const push = pushes[0];
  assert.equal(push.ok, true, `the stand-in verified and decrypted it: ${push.error}`);
  assert.equal(push.headers['Content-Encoding'], 'aes128gcm');
  const counts = await http('GET', `${API}/v1/me/notifications/counts`, USER_TOKEN);
  assert.deepEqual(push.payload, { id, title, body: 'api v2.15 is live.', action_url: actionUrl, category: 'deploy', unread: counts.unread },
    'the payload, decrypted by an independent implementation');
  log(`pushed ${ms} ms after the publish; payload ${JSON.stringify(push.payload)}`);

  // The service worker, as Chromium runs it for a push; its badge calls recorded.
  const worker = context.serviceWorkers().find((w) => w.url() === `${API}/demo/herald-sw.js`);
  assert.ok(worker, 'the service worker runs');
  await worker.evaluate(() => {
    const set = navigator.setAppBadge.bind(navigator);
    self.__badges = [];
    navigator.setAppBadge = (n) => { self.__badges.push(n); return set(n); };
  });
  const deliver = () => cdp.send('ServiceWorker.deliverPushMessage', { origin: API, registrationId, data: JSON.stringify(push.payload) });
  await deliver();
  const notes = () => tab1.evaluate(async () => (await (await navigator.serviceWorker.getRegistration('/demo')).getNotifications())
    .map((n) => ({ title: n.title, body: n.body, tag: n.tag, data: n.data })));
  const { value: shownNotes } = await eventually('the system notification is shown', notes, (n) => n.some((x) => x.tag === id), 5000);
  assert.deepEqual(shownNotes.filter((n) => n.tag === id), [{
    title, body: 'api v2.15 is live.', tag: id,
    data: { herald: true, id, action_url: actionUrl, category: 'deploy', url: `${API}/demo` },
  }]);
  assert.deepEqual(await worker.evaluate(() => self.__badges), [counts.unread], 'the app badge shows the unread count');
  // The same push again (a push service may deliver twice): still one notification.
  await deliver();
  await sleep(500);
  assert.equal((await notes()).filter((n) => n.tag === id).length, 1, 'one notification per id');
  // The open tab keeps the app badge at the exact count too.
  await eventually('the page set the app badge', () => tab1.evaluate(() => window.__push.badges), (b) => b.at(-1) === counts.unread, 3000);
});

step('turning the switch off deletes the subscription and unsubscribes', 30_000, async () => {
  await openSettings(tab1);
  await pushSwitch(tab1).click();
  await eventually('the switch is off', () => checked(pushSwitch(tab1)), (c) => c === 'false', 10_000);
  assert.deepEqual(await subscriptions(), [], 'the server forgot the endpoint');
  assert.deepEqual((await tab1.evaluate(() => window.__push.calls)).map((c) => c.op), ['subscribe', 'unsubscribe']);
});

step('the real pushManager with no push service fails clearly; blocked notifications are explained', 90_000, async () => {
  // A browser profile on disk (push needs one), the real PushManager, nothing to reach.
  const dir = mkdtempSync(path.join(os.tmpdir(), 'herald-push-profile-'));
  const profile = await chromium.launchPersistentContext(dir, { executablePath: CHROMIUM, args: ARGS, viewport: { width: 1280, height: 860 } });
  try {
    await profile.grantPermissions(['notifications'], { origin: API });
    const page = profile.pages()[0] || await profile.newPage();
    watch(page, 'profile');
    await page.goto(DEMO);
    await openSettings(page);
    await eventually('the switch is usable', () => pushSwitch(page).isDisabled(), (d) => d === false, 5000);
    const t0 = Date.now();
    await pushSwitch(page).click();
    assert.equal(await pushSwitch(page).getAttribute('aria-busy'), 'true', 'busy while the browser subscribes');
    const { value: error } = await eventually('a clear error', () => pushError(page), (t) => t.length > 0, 30_000, 100);
    log(`no push service: “${error}” after ${Date.now() - t0} ms`);
    assert.match(error, /push service did not answer/);
    assert.equal(await checked(pushSwitch(page)), 'false');
    assert.equal(await pushSwitch(page).getAttribute('aria-busy'), 'false', 'not spinning');
    assert.deepEqual(await subscriptions(), [], 'nothing reached the server');
  } finally {
    await profile.close();
    rmSync(dir, { recursive: true, force: true });
  }

  // Notifications not allowed (headless Chromium answers the prompt with "denied").
  const blocked = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  try {
    const page = await blocked.newPage();
    watch(page, 'blocked');
    await page.goto(DEMO);
    await openSettings(page);
    await eventually('the switch is usable', () => pushSwitch(page).isDisabled(), (d) => d === false, 5000);
    await pushSwitch(page).click();
    const { value: error } = await eventually('it says notifications are blocked', () => pushError(page), (t) => t.length > 0, 5000);
    assert.match(error, /blocked/);
    await eventually('the switch is off and disabled, with the reason', async () => [await checked(pushSwitch(page)), await pushSwitch(page).isDisabled(), await pushHint(page)],
      ([c, d, h]) => c === 'false' && d === true && /blocked/.test(h), 3000);
    log(`blocked: “${error}”`);
  } finally {
    await blocked.close();
  }
  assert.deepEqual(await subscriptions(), [], 'nothing reached the server');
});
