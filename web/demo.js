/*
 * demo.js — the /demo page's glue, on the @herald/client package (herald-bell.js is the
 * package's single-file build, the same code users get; see clients/js).
 *
 *   - The user token arrives once in the URL fragment (`/demo#token=<user JWT>`, printed
 *     by scripts/up). A fragment never reaches a server, a log or a Referer; the page
 *     moves it to sessionStorage and drops it from the address bar at once.
 *   - One HeraldStream for the whole page (and for every tab of it: the package shares
 *     one EventSource across tabs), given to <herald-bell> and to the order tracker and
 *     activity feed widgets (tracker.js, feed.js) through `window.Herald`.
 *
 * Loaded as a module before the deferred widget scripts, so `window.Herald` exists when
 * they run.
 */
import { HeraldClient, HeraldError, HeraldStream } from './herald-bell.js';

const API = window.location.origin;
const TOKEN_KEY = 'herald.demo.token';
const FIRST_CONNECT_WAIT_MS = 3000;

const $ = (sel) => document.querySelector(sel);
const ui = {
  bell: $('herald-bell'),
  status: $('[data-testid="status"]'),
  statusLabel: $('[data-testid="status"] .conn-label'),
  banner: $('#banner'),
  toasts: $('#toasts'),
  avatar: $('#avatar'),
  greeting: $('#greeting'),
  howto: $('#howto-code'),
};

// ------------------------------------------------------------------ token

function readToken() {
  const hash = new URLSearchParams(window.location.hash.replace(/^#/, ''));
  let token = hash.get('token');
  if (token) {
    try { sessionStorage.setItem(TOKEN_KEY, token); } catch (_) { /* private mode */ }
    hash.delete('token');
    const rest = hash.toString();
    history.replaceState(history.state, '', window.location.pathname + window.location.search + (rest ? '#' + rest : ''));
  } else {
    try { token = sessionStorage.getItem(TOKEN_KEY); } catch (_) { token = null; }
  }
  return token || null;
}

/** The `sub` of a JWT, for display and topic names only (the server verifies the token). */
function tokenSubject(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const bytes = Uint8Array.from(atob(part + '==='.slice((part.length + 3) % 4)), (c) => c.charCodeAt(0));
    const sub = JSON.parse(new TextDecoder().decode(bytes)).sub;
    return typeof sub === 'string' ? sub : null;
  } catch (_) {
    return null;
  }
}

// ------------------------------------------------------------------ page helpers

function showBanner(html) {
  ui.banner.innerHTML = html; // static strings only
  ui.banner.hidden = false;
}

function toast(text) {
  const t = document.createElement('div');
  t.className = 'toast';
  t.textContent = text;
  ui.toasts.appendChild(t);
  setTimeout(() => t.remove(), 4000);
}

function time(iso) {
  const t = Date.parse(iso);
  return Number.isFinite(t) ? t : 0;
}

function relativeTime(iso, now) {
  const t = time(iso);
  if (!t) return '';
  const s = Math.max(0, Math.round(((now || Date.now()) - t) / 1000));
  if (s < 45) return 'just now';
  const m = Math.round(s / 60);
  if (m < 60) return m + 'm ago';
  const h = Math.round(m / 60);
  if (h < 24) return h + 'h ago';
  const d = Math.round(h / 24);
  if (d === 1) return 'yesterday';
  if (d < 7) return d + 'd ago';
  const date = new Date(t);
  const opts = { month: 'short', day: 'numeric' };
  if (date.getFullYear() !== new Date(now || Date.now()).getFullYear()) opts.year = 'numeric';
  return date.toLocaleDateString(undefined, opts);
}

/** "10:42 AM" today, "Nov 24, 10:42 AM" otherwise. */
function clockTime(iso) {
  const t = time(iso);
  if (!t) return '';
  const date = new Date(t);
  const clock = date.toLocaleTimeString(undefined, { hour: 'numeric', minute: '2-digit' });
  if (date.toDateString() === new Date().toDateString()) return clock;
  return date.toLocaleDateString(undefined, { month: 'short', day: 'numeric' }) + ', ' + clock;
}

const HUES = [239, 199, 262, 160, 330, 24, 187, 292];
function hue(text) {
  let h = 0;
  for (let i = 0; i < text.length; i++) h = (h * 31 + text.charCodeAt(i)) >>> 0;
  return HUES[h % HUES.length];
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function topicKey(raw) {
  return typeof raw === 'string' && /^[A-Za-z0-9._~@:-]{1,200}$/.test(raw) ? raw : null;
}

function setStatus(status) {
  ui.status.dataset.state = status;
  ui.statusLabel.textContent = status;
  ui.status.title = status === 'live'
    ? 'Live: connected to the Herald gateway'
    : status === 'reconnecting' ? 'Connection lost, reconnecting…' : 'Not connected';
}

// ------------------------------------------------------------------ wiring

const token = readToken();
const sub = token ? tokenSubject(token) : null;

function onUnauthorized() {
  if (Herald.fatal) return;
  Herald.fatal = true;
  stream?.close();
  setStatus('offline');
  showBanner('The server refused this page\'s token (401). Reopen the demo with a fresh <code>#token=</code> ' +
    '(<code>scripts/up</code> prints the link).');
}

const client = token ? new HeraldClient({ baseUrl: API, token, onUnauthorized }) : null;
let stream = null;
const holds = [];

async function loadConfig() {
  for (let attempt = 0; ; attempt++) {
    try {
      const res = await fetch('/demo/config.json', { cache: 'no-store' });
      if (!res.ok) throw new Error('HTTP ' + res.status);
      const cfg = await res.json();
      if (cfg && typeof cfg.gateway_url === 'string' && cfg.gateway_url) return cfg;
      throw new Error('no gateway_url');
    } catch (_) {
      if (attempt === 0) setStatus('reconnecting');
      await new Promise((r) => setTimeout(r, Math.min(1000 * (attempt + 1), 5000)));
    }
  }
}

// What tracker.js and feed.js use. Until the config is loaded, their stream calls queue.
const pending = [];
const later = (fn) => (stream ? fn(stream) : pending.push(fn));
const Herald = {
  API,
  token,
  sub,
  fatal: false,
  HttpError: HeraldError,
  api(method, path, body) {
    const opts = method === 'GET' ? {} : { body: body === undefined ? {} : body };
    return client.request(method.toLowerCase(), path, opts);
  },
  showBanner,
  toast,
  time,
  relativeTime,
  clockTime,
  hue,
  el,
  topicKey,
  stream: {
    get status() { return stream ? stream.status : 'connecting'; },
    isLive: (topic) => !!stream && stream.isLive(topic),
    on: (type, fn) => later((s) => s.on(type, fn)),
    onResync: (topic, fn) => later((s) => s.onResync(topic || null, fn)),
    onState: (fn) => later((s) => s.onState(fn)),
    addTopic: (topic, opts) => later((s) => s.addTopic(topic, opts || {})),
    /** The first connection waits (at most 3 s) for it, so load-time topics share the first stream. */
    hold: (promise) => { if (!stream || stream.role === 'idle') holds.push(Promise.resolve(promise)); },
  },
};
window.Herald = Herald;

async function main() {
  if (!token) {
    setStatus('offline');
    ui.bell.hidden = true;
    showBanner('No token: open this page as <code>/demo#token=&lt;user JWT&gt;</code> ' +
      '(<code>scripts/up</code> prints the link for alice).');
    return;
  }
  if (sub) {
    ui.avatar.textContent = sub.slice(0, 2);
    ui.greeting.textContent = 'Welcome back, ' + sub.charAt(0).toUpperCase() + sub.slice(1);
    ui.howto.textContent = ui.howto.textContent.replace('$API', API).replace('["alice"]', JSON.stringify([sub]));
  } else {
    ui.howto.textContent = ui.howto.textContent.replace('$API', API);
  }
  const baseTitle = document.title;
  ui.bell.addEventListener('herald-unread', (e) => {
    const n = e.detail.unread;
    document.title = n > 0 ? '(' + n + ') ' + baseTitle : baseTitle;
  });

  const cfg = await loadConfig();
  stream = new HeraldStream({
    url: cfg.gateway_url,
    getToken: (topics) => client.createStreamToken(topics),
    key: cfg.gateway_url + '|' + (sub || ''),
  });
  stream.onState(setStatus);
  stream.onError(() => {
    setStatus('offline');
    showBanner('This token may not open a stream (401/403).');
  });
  for (const fn of pending.splice(0)) fn(stream);

  // The bell shares the page's stream; it reads the same token.
  ui.bell.setAttribute('api-url', API);
  ui.bell.setAttribute('stream-url', cfg.gateway_url);
  ui.bell.stream = stream;
  ui.bell.getToken = () => token;

  // The widgets' first REST loads decide their topics: wait for them (briefly).
  await Promise.race([Promise.allSettled(holds), new Promise((r) => setTimeout(r, FIRST_CONNECT_WAIT_MS))]);
  if (!Herald.fatal) stream.start();
}

main();
