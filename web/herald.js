/*
 * herald.js — what the widgets of the /demo page share: the user token, REST calls, the
 * connection pill, and ONE EventSource that carries every topic the page follows.
 * Load it before the widgets (bell.js, tracker.js, feed.js); it exposes `window.Herald`.
 *
 * Plain ES2020, no dependencies, no build step.
 *
 *   Herald.token / Herald.sub       the user JWT (from ?token=, then sessionStorage) and its `sub`
 *   Herald.api(method, path, body)  same-origin REST with `Authorization: Bearer <user token>`;
 *                                   rejects with Herald.HttpError; a 401 stops the whole page
 *   Herald.fatal                    true once the server refused the user token
 *
 *   Herald.stream.on(type, fn)           fn(envelope, messageEvent) for every event of that type
 *   Herald.stream.onResync(topic, fn)    fn('open' | 'reset'): refetch over REST. Called when a
 *                                        stream carrying `topic` (null = the user's own
 *                                        `user:{sub}`) opens and cannot prove it saw everything
 *                                        of it, and on `herald.reset`
 *   Herald.stream.addTopic(topic, opts)  follow one more topic; an open stream is reopened at
 *                                        once with a new stream token, resuming after the last
 *                                        event seen. opts.onRefused() runs if the API refuses it
 *   Herald.stream.hold(promise)          the first connection waits (at most 3 s) for it, so
 *                                        that topics known at load time share the first stream
 *   Herald.stream.onState(fn)            fn(status) on every change of the status or of the
 *                                        open stream's topics; Herald.stream.isLive(topic)
 *
 * The stream
 *   POST /v1/stream-tokens {"topics": ["user:<sub>", …extra topics]} (or {} with no extras),
 *   then EventSource(<gateway>/v1/stream?access_token=<token>[&last_event_id=<seq>]).
 *   - Every event's `e.lastEventId` is recorded; a stream we open ourselves (reauth, a topic
 *     was added, the browser gave up: readyState CLOSED) resumes from it, so nothing is lost.
 *   - A topic that the previous stream did not carry has no such guarantee: its owner is
 *     asked to resync once the new stream is open (events racing with that refetch are
 *     harmless, the widgets merge by id).
 *   - herald.reauth: reopen with a fresh token. herald.reset: everybody resyncs.
 *   - error with readyState CONNECTING: the browser retries by itself with Last-Event-ID.
 */
(() => {
  'use strict';

  const API = window.location.origin;
  const SCRIPT = document.currentScript && document.currentScript.src;
  const DEMO_BASE = SCRIPT ? new URL('./', SCRIPT).href : API + '/demo/';
  const TOKEN_KEY = 'herald.demo.token';
  const FIRST_CONNECT_WAIT_MS = 3000;

  const $ = (id) => document.getElementById(id);
  const ui = {
    status: document.querySelector('[data-testid="status"]'),
    statusLabel: document.querySelector('[data-testid="status"] .conn-label'),
    banner: $('banner'),
    toasts: $('toasts'),
  };

  // ------------------------------------------------------------------ token

  function readToken() {
    const params = new URLSearchParams(window.location.search);
    let token = params.get('token');
    if (token) {
      try { sessionStorage.setItem(TOKEN_KEY, token); } catch (_) { /* private mode */ }
      // Keep the long-lived token out of the address bar, history and bookmarks.
      params.delete('token');
      const q = params.toString();
      history.replaceState(history.state, '', window.location.pathname + (q ? '?' + q : '') + window.location.hash);
    } else {
      try { token = sessionStorage.getItem(TOKEN_KEY); } catch (_) { token = null; }
    }
    return token || null;
  }

  /** The `sub` of a JWT, for display and topic names only (the server verifies the token). */
  function tokenSubject(token) {
    try {
      const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
      const json = decodeURIComponent(Array.from(atob(part + '==='.slice((part.length + 3) % 4)),
        (c) => '%' + c.charCodeAt(0).toString(16).padStart(2, '0')).join(''));
      const sub = JSON.parse(json).sub;
      return typeof sub === 'string' ? sub : null;
    } catch (_) {
      return null;
    }
  }

  // ------------------------------------------------------------------ REST

  class HttpError extends Error {
    constructor(status, problem) {
      super((problem && (problem.detail || problem.title)) || 'HTTP ' + status);
      this.status = status;
      this.problem = problem;
    }
  }

  async function api(method, path, body) {
    const headers = { Authorization: 'Bearer ' + Herald.token, Accept: 'application/json, application/problem+json' };
    const init = { method, headers, cache: 'no-store' };
    if (method !== 'GET') {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body === undefined ? {} : body);
    }
    const res = await fetch(API + path, init);
    if (!res.ok) {
      let problem = null;
      try { problem = await res.json(); } catch (_) { /* not JSON */ }
      const err = new HttpError(res.status, problem);
      if (res.status === 401) onUnauthorized();
      throw err;
    }
    if (res.status === 204) return null;
    return res.json();
  }

  function onUnauthorized() {
    if (Herald.fatal) return;
    Herald.fatal = true;
    closeStream();
    clearTimeout(S.reconnectTimer);
    setStatus('offline', 'offline');
    showBanner('The server refused this page\'s token (401). Reopen the demo with a fresh <code>?token=</code> ' +
      '(<code>scripts/up</code> prints one).');
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

  /** A stable hue per string, for icons and avatars. */
  const HUES = [239, 199, 262, 160, 330, 24, 187, 292];
  function hue(text) {
    let h = 0;
    for (let i = 0; i < text.length; i++) h = (h * 31 + text.charCodeAt(i)) >>> 0;
    return HUES[h % HUES.length];
  }

  /** document.createElement with a class and optional text. */
  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  /** The key of a topic (`kind:key`), valid per the server's rules, or null. */
  function topicKey(raw) {
    return typeof raw === 'string' && /^[A-Za-z0-9._~@:-]{1,200}$/.test(raw) ? raw : null;
  }

  // ------------------------------------------------------------------ stream

  const S = {
    started: false,
    gatewayUrl: null,
    es: null,
    connectGen: 0,
    lastEventId: null,
    attempts: 0,
    reconnectTimer: null,
    reopenQueued: false,
    status: 'connecting',

    topics: new Set(), // extra topics beyond the user's own
    refused: new Set(), // extra topics the API would not grant: not asked for again
    refusedHooks: new Map(), // topic -> fn
    covered: new Set(), // topics our position (lastEventId) is valid for
    openTopics: new Set(), // topics of the stream that is open right now
    handlers: new Map(), // event type -> Set<fn(env, e)>
    resyncs: new Map(), // topic (null = the user's own) -> Set<fn(reason)>
    stateListeners: new Set(),
    holds: [],
  };

  function setStatus(status, label) {
    S.status = status;
    ui.status.dataset.state = status;
    ui.statusLabel.textContent = label || status;
    ui.status.title = status === 'live'
      ? 'Live: connected to the Herald gateway'
      : status === 'reconnecting' ? 'Connection lost, reconnecting…' : 'Not connected';
    notifyState();
  }

  function notifyState() {
    for (const fn of S.stateListeners) {
      try { fn(S.status); } catch (e) { console.error(e); }
    }
  }

  function closeStream() {
    if (S.es) {
      S.es.close();
      S.es = null;
    }
    if (S.openTopics.size) {
      S.openTopics = new Set();
      notifyState();
    }
  }

  function scheduleReconnect() {
    if (Herald.fatal) return;
    clearTimeout(S.reconnectTimer);
    // 1 s first, then a little longer each time (capped), with jitter so that many
    // clients of a restarted gateway do not come back in lockstep.
    const delay = S.attempts === 0 ? 1000 : Math.min(1000 * (S.attempts + 1), 5000) + Math.random() * 300;
    S.attempts++;
    S.reconnectTimer = setTimeout(connect, delay);
  }

  function track(es, e) {
    if (e.lastEventId) {
      S.lastEventId = e.lastEventId;
      es.sawId = true; // the browser has a Last-Event-ID to resume this EventSource with
    }
  }

  function resync(topics, reason) {
    for (const topic of topics) {
      for (const fn of S.resyncs.get(topic) || []) {
        try { fn(reason); } catch (e) { console.error(e); }
      }
    }
  }

  /** Owners to resync for a stream carrying `topics` (null: the user's own, always carried). */
  function resyncTopics(topics) {
    return Array.from(S.resyncs.keys()).filter((t) => t === null || topics.has(t));
  }

  function listen(es, type) {
    es.addEventListener(type, (e) => {
      if (es !== S.es) return;
      track(es, e);
      let env;
      try {
        env = JSON.parse(e.data);
      } catch (_) {
        return;
      }
      for (const fn of S.handlers.get(type) || []) {
        try { fn(env, e); } catch (err) { console.error(err); }
      }
    });
  }

  /** Drops topics the API would not put in a stream token, and tells their owners. */
  function refuse(topics) {
    for (const topic of topics) {
      S.topics.delete(topic);
      S.refused.add(topic);
      const hook = S.refusedHooks.get(topic);
      S.refusedHooks.delete(topic);
      if (hook) {
        try { hook(); } catch (e) { console.error(e); }
      }
    }
  }

  async function connect() {
    if (Herald.fatal || !S.gatewayUrl) return;
    clearTimeout(S.reconnectTimer);
    const gen = ++S.connectGen;
    closeStream();

    // Without a subject we cannot name the user's own topic: stream just that one.
    const extras = Herald.sub ? Array.from(S.topics) : [];
    const body = extras.length ? { topics: ['user:' + Herald.sub].concat(extras) } : {};
    let streamToken;
    try {
      streamToken = await api('POST', '/v1/stream-tokens', body);
    } catch (e) {
      if (gen !== S.connectGen || Herald.fatal) return;
      if (e instanceof HttpError && e.status === 403) {
        if (extras.length) {
          // One of the extra topics is not readable (any more): keep the rest of the page live.
          console.warn('herald: the stream token was refused for', extras.join(', '), '-', e.message);
          refuse(extras);
          connect();
          return;
        }
        setStatus('offline', 'offline');
        showBanner('This token may not open a stream (403).');
        return;
      }
      setStatus('reconnecting');
      scheduleReconnect();
      return;
    }
    if (gen !== S.connectGen || Herald.fatal) return;

    const streamTopics = new Set(Array.isArray(streamToken.topics) ? streamToken.topics : []);
    const resumeFrom = S.lastEventId;
    const covered = S.covered;
    let url = S.gatewayUrl.replace(/\/+$/, '') + '/v1/stream?access_token=' + encodeURIComponent(streamToken.token);
    if (resumeFrom) url += '&last_event_id=' + encodeURIComponent(resumeFrom);
    const es = new EventSource(url);
    es.sawId = false;
    S.es = es;
    let opened = false;

    es.addEventListener('open', () => {
      if (es !== S.es) return;
      S.attempts = 0;
      S.openTopics = streamTopics;
      const first = !opened;
      opened = true;
      setStatus('live');
      if (first) {
        S.covered = streamTopics;
        if (!resumeFrom) {
          // No position: whatever happened before this stream started comes over REST.
          resync(resyncTopics(streamTopics), 'open');
        } else {
          // Resumed: only topics the previous stream did not carry may have a gap.
          resync(resyncTopics(streamTopics).filter((t) => t !== null && !covered.has(t)), 'open');
        }
      } else if (!es.sawId) {
        // The browser reopened it by itself, but without a Last-Event-ID to send.
        resync(resyncTopics(streamTopics), 'open');
      }
    });

    es.addEventListener('error', () => {
      if (es !== S.es) return;
      if (es.readyState === EventSource.CLOSED) {
        // The browser gave up (non-200, e.g. an expired stream token or a gateway
        // that is still starting): reconnect ourselves with a fresh token.
        closeStream();
        setStatus('reconnecting');
        scheduleReconnect();
      } else {
        // CONNECTING: the browser retries by itself and sends Last-Event-ID.
        S.openTopics = new Set();
        setStatus('reconnecting');
      }
    });

    for (const type of S.handlers.keys()) listen(es, type);
    es.addEventListener('herald.reset', (e) => {
      if (es !== S.es) return;
      track(es, e);
      resync(resyncTopics(streamTopics), 'reset');
    });
    es.addEventListener('herald.reauth', (e) => {
      if (es !== S.es) return;
      track(es, e);
      // The gateway ends this stream as its token expires: reopen with a fresh token,
      // resuming after the last event we saw. The status stays "live" unless that fails.
      connect();
    });
    es.addEventListener('message', (e) => {
      if (es === S.es) track(es, e); // unnamed frames (the initial `id: <head>`) carry positions too
    });
  }

  /** Reopens the stream (new topics) once per tick, if it is up or being brought up. */
  function reopenSoon() {
    if (!S.started || !S.gatewayUrl || S.reopenQueued) return;
    S.reopenQueued = true;
    setTimeout(() => {
      S.reopenQueued = false;
      if (!Herald.fatal) connect();
    }, 0);
  }

  async function loadConfig() {
    for (let attempt = 0; ; attempt++) {
      try {
        const res = await fetch(new URL('config.json', DEMO_BASE).href, { cache: 'no-store' });
        if (!res.ok) throw new Error('HTTP ' + res.status);
        const cfg = await res.json();
        if (!cfg || typeof cfg.gateway_url !== 'string' || !cfg.gateway_url) throw new Error('no gateway_url');
        return cfg;
      } catch (e) {
        if (attempt === 0) setStatus('reconnecting');
        await new Promise((r) => setTimeout(r, Math.min(1000 * (attempt + 1), 5000)));
      }
    }
  }

  async function start() {
    if (S.started || !Herald.token || Herald.fatal) return;
    S.started = true;
    const holds = Promise.allSettled(S.holds.splice(0));
    const [cfg] = await Promise.all([
      loadConfig(),
      Promise.race([holds, new Promise((r) => setTimeout(r, FIRST_CONNECT_WAIT_MS))]),
    ]);
    S.gatewayUrl = cfg.gateway_url;
    connect();
  }

  const stream = {
    get status() { return S.status; },
    get topics() { return new Set(S.openTopics); },
    isLive(topic) { return S.status === 'live' && S.openTopics.has(topic); },
    on(type, fn) {
      let set = S.handlers.get(type);
      if (!set) {
        set = new Set();
        S.handlers.set(type, set);
        if (S.es) listen(S.es, type);
      }
      set.add(fn);
    },
    onResync(topic, fn) {
      const key = topic || null;
      if (!S.resyncs.has(key)) S.resyncs.set(key, new Set());
      S.resyncs.get(key).add(fn);
    },
    onState(fn) {
      S.stateListeners.add(fn);
    },
    addTopic(topic, opts) {
      if (!topic || S.topics.has(topic) || S.refused.has(topic) || (Herald.sub && topic === 'user:' + Herald.sub)) return;
      S.topics.add(topic);
      if (opts && typeof opts.onRefused === 'function') S.refusedHooks.set(topic, opts.onRefused);
      reopenSoon();
    },
    hold(promise) {
      if (!S.started) S.holds.push(Promise.resolve(promise));
    },
  };

  // ------------------------------------------------------------------ export

  const Herald = {
    API,
    token: readToken(),
    sub: null,
    fatal: false,
    HttpError,
    api,
    showBanner,
    toast,
    time,
    relativeTime,
    clockTime,
    hue,
    el,
    topicKey,
    stream,
  };
  Herald.sub = Herald.token ? tokenSubject(Herald.token) : null;
  window.Herald = Herald;

  if (!Herald.token) {
    setStatus('offline', 'offline');
    showBanner('No token: open this page as <code>/demo?token=&lt;user JWT&gt;</code> ' +
      '(<code>scripts/up</code> prints a demo token for alice).');
  }

  // Come back quickly when the network or the tab does.
  window.addEventListener('online', () => { if (S.started && !S.es && !Herald.fatal) connect(); });
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible' && S.started && !S.es && !Herald.fatal) connect();
  });
  window.addEventListener('pagehide', closeStream);

  // The widgets are deferred scripts that run after this one: connect once they have all
  // registered their handlers, topics and holds.
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else setTimeout(start, 0);
})();
