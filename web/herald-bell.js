/* @herald/client 0.1.0 — <herald-bell>, HeraldStream and HeraldClient in one ES module. Built from clients/js by `npm run build`; do not edit. */

// dist/client.js
var HeraldError = class extends Error {
  constructor(status, problem, retryAfter) {
    super(problem && (problem.detail || problem.title) || `HTTP ${status}`);
    this.name = "HeraldError";
    this.status = status;
    this.problem = problem;
    this.retryAfter = retryAfter;
  }
};
var HeraldClient = class {
  constructor(options) {
    if (!options || typeof options.baseUrl !== "string" || !options.baseUrl) {
      throw new TypeError("HeraldClient: baseUrl is required");
    }
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    this.token = options.token;
    this.onUnauthorized = options.onUnauthorized;
    this.fetchImpl = options.fetch ?? ((input, init) => fetch(input, init));
  }
  /**
   * Calls any documented operation. Path parameters are substituted (and
   * escaped), `query` becomes the query string, `body` is sent as JSON.
   * Resolves with the parsed JSON answer; rejects with `HeraldError`.
   */
  async request(method, path, ...[options]) {
    const opts = options ?? {};
    let url = this.baseUrl + String(path).replace(/\{([^}]+)\}/g, (_, name) => {
      const v = opts.path?.[name];
      if (v === void 0 || v === null)
        throw new TypeError(`HeraldClient: path parameter ${name} is required`);
      return encodeURIComponent(String(v));
    });
    if (opts.query) {
      const q = new URLSearchParams();
      for (const [k, v] of Object.entries(opts.query))
        if (v !== void 0 && v !== null)
          q.set(k, String(v));
      const s = q.toString();
      if (s)
        url += "?" + s;
    }
    const headers = { Accept: "application/json, application/problem+json", ...opts.headers };
    const token = await this.currentToken();
    if (token)
      headers.Authorization = `Bearer ${token}`;
    const init = { method: method.toUpperCase(), headers, cache: "no-store", signal: opts.signal };
    if (method !== "get") {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(opts.body === void 0 ? {} : opts.body);
    }
    const res = await this.fetchImpl(url, init);
    if (!res.ok) {
      let problem = null;
      try {
        problem = await res.json();
      } catch {
      }
      const ra = Number(res.headers.get("retry-after"));
      const error = new HeraldError(res.status, problem, Number.isFinite(ra) && ra >= 0 && res.headers.has("retry-after") ? ra : null);
      if (res.status === 401 && this.onUnauthorized)
        this.onUnauthorized(error);
      throw error;
    }
    if (res.status === 204)
      return null;
    return await res.json();
  }
  async currentToken() {
    const t = this.token;
    if (!t)
      return null;
    const v = typeof t === "function" ? await t() : t;
    return v || null;
  }
  // ------------------------------------------------------------- inbox
  /** `GET /v1/me/notifications`: one page of the inbox, newest first. */
  listNotifications(query = {}) {
    const { cursor, ...rest } = query;
    return this.request("get", "/v1/me/notifications", { query: { ...rest, ...cursor ? { cursor } : {} } });
  }
  /** `GET /v1/me/notifications/counts`: `{unread, unseen, total}`, exact. */
  counts() {
    return this.request("get", "/v1/me/notifications/counts");
  }
  markRead(id) {
    return this.request("post", "/v1/me/notifications/{id}/read", { path: { id } });
  }
  markUnread(id) {
    return this.request("post", "/v1/me/notifications/{id}/unread", { path: { id } });
  }
  archive(id) {
    return this.request("post", "/v1/me/notifications/{id}/archive", { path: { id } });
  }
  /** `POST /v1/me/notifications/read-all`: the new counts. */
  readAll() {
    return this.request("post", "/v1/me/notifications/read-all");
  }
  /** `POST /v1/me/notifications/seen`: the new counts. */
  seen() {
    return this.request("post", "/v1/me/notifications/seen");
  }
  // ------------------------------------------------------------- streams, history, feeds, orders
  /**
   * `POST /v1/stream-tokens`: a short-lived token for `GET /v1/stream?access_token=`.
   * Without topics it carries the caller's own `user:{sub}`.
   */
  createStreamToken(topics) {
    return this.request("post", "/v1/stream-tokens", { body: topics && topics.length ? { topics } : {} });
  }
  topicEvents(topic, query = {}) {
    return this.request("get", "/v1/topics/{topic}/events", { path: { topic }, query });
  }
  getOrder(orderId) {
    return this.request("get", "/v1/orders/{order_id}", { path: { order_id: orderId } });
  }
  listActivities(feed, query = {}) {
    const { cursor, ...rest } = query;
    return this.request("get", "/v1/feeds/{feed}/activities", { path: { feed }, query: { ...rest, ...cursor ? { cursor } : {} } });
  }
};

// dist/bell-style.js
var BELL_CSS = `
:host {
  --_accent: var(--herald-accent, #4f46e5);
  --_accent-soft: var(--herald-accent-soft, #eef2ff);
  --_surface: var(--herald-surface, #ffffff);
  --_hover: var(--herald-hover, #f6f7f9);
  --_text: var(--herald-text, #111827);
  --_muted: var(--herald-text-muted, #6b7280);
  --_border: var(--herald-border, #e5e7eb);
  --_badge-bg: var(--herald-badge-bg, #e11d48);
  --_badge-color: var(--herald-badge-color, #ffffff);
  display: inline-block; position: relative;
  font: 14px/1.5 var(--herald-font, system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif);
  color: var(--_text);
}
:host([hidden]) { display: none; }
* { box-sizing: border-box; }
button { font: inherit; }
.bell {
  position: relative; width: 40px; height: 40px; display: grid; place-items: center;
  border: 0; border-radius: 10px; background: transparent; cursor: pointer;
  color: var(--herald-icon-color, #4b5563);
}
.bell:hover, .bell[aria-expanded="true"] { background: var(--_hover); color: var(--_text); }
.bell:focus-visible, .link:focus-visible, .action:focus-visible, .item:focus-visible {
  outline: 2px solid var(--_accent); outline-offset: 2px;
}
.bell.ring svg { animation: ring .7s ease-in-out; transform-origin: 50% 4px; }
@keyframes ring {
  15% { transform: rotate(14deg); } 30% { transform: rotate(-12deg); }
  45% { transform: rotate(8deg); } 60% { transform: rotate(-5deg); } 75% { transform: rotate(2deg); }
}
.badge {
  position: absolute; top: 3px; left: 21px; min-width: 18px; height: 18px; padding: 0 5px;
  border-radius: 9px; border: 2px solid var(--_surface);
  background: var(--_badge-bg); color: var(--_badge-color);
  font-size: 11px; font-weight: 700; line-height: 14px; text-align: center;
  font-variant-numeric: tabular-nums; white-space: nowrap; box-sizing: content-box;
}
.badge[hidden] { display: none; }
.dropdown {
  position: absolute; right: -8px; top: calc(100% + 10px); z-index: 1000;
  width: var(--herald-dropdown-width, 400px); max-width: calc(100vw - 24px);
  background: var(--_surface); border: 1px solid var(--_border);
  border-radius: var(--herald-radius, 12px);
  box-shadow: 0 12px 32px -6px rgba(16, 24, 40, .18), 0 4px 8px -4px rgba(16, 24, 40, .08);
  display: flex; flex-direction: column; overflow: hidden; text-align: left;
  animation: dd-in .12s ease-out;
}
.dropdown[hidden] { display: none; }
@keyframes dd-in { from { opacity: 0; transform: translateY(-4px); } }
.head {
  display: flex; align-items: center; justify-content: space-between;
  padding: 14px 16px 12px; border-bottom: 1px solid var(--_border);
}
.title { margin: 0; font-size: 15px; font-weight: 650; display: flex; align-items: center; gap: 8px; }
.count { font-size: 12px; font-weight: 600; color: var(--_accent); background: var(--_accent-soft); border-radius: 999px; padding: 1px 8px; }
.count:empty { display: none; }
.link { border: 0; background: none; padding: 4px 6px; border-radius: 6px; color: var(--_accent); font-size: 13px; font-weight: 550; cursor: pointer; }
.link:hover:not(:disabled) { background: var(--_accent-soft); }
.link:disabled { color: var(--_muted); cursor: default; }
.scroll { max-height: min(440px, calc(100vh - 160px)); overflow-y: auto; overscroll-behavior: contain; }
.items { list-style: none; margin: 0; padding: 0; }
.item {
  position: relative; display: grid; grid-template-columns: 36px 1fr 8px; gap: 12px;
  padding: 12px 16px 10px; border-bottom: 1px solid var(--_border);
}
.item:last-child { border-bottom: 0; }
.item:hover { background: var(--_hover); }
.item.linked { cursor: pointer; }
.item.fresh { animation: fresh 1.6s ease-out; }
@keyframes fresh { from { background: var(--_accent-soft); } }
.icon {
  --hue: 239; width: 36px; height: 36px; border-radius: 10px; display: grid; place-items: center;
  font-weight: 700; font-size: 14px; text-transform: uppercase;
  background: hsl(var(--hue) 90% 96%); color: hsl(var(--hue) 60% 48%);
}
.main { min-width: 0; }
.item-title { font-weight: 500; color: var(--_muted); overflow-wrap: anywhere; }
.item.unread .item-title { font-weight: 650; color: var(--_text); }
.body {
  margin-top: 2px; color: var(--_muted); font-size: 13px; overflow-wrap: anywhere;
  display: -webkit-box; -webkit-line-clamp: 2; -webkit-box-orient: vertical; overflow: hidden;
}
.body[hidden] { display: none; }
.foot { margin-top: 4px; display: flex; align-items: center; justify-content: space-between; gap: 8px; min-height: 24px; }
.meta { font-size: 12px; color: var(--_muted); display: flex; gap: 6px; align-items: center; white-space: nowrap; }
.cat { text-transform: capitalize; }
.dot { width: 8px; height: 8px; margin-top: 7px; border-radius: 50%; background: var(--_accent); }
.item:not(.unread) .dot { visibility: hidden; }
.actions { display: flex; gap: 2px; margin-right: -6px; }
.action {
  border: 0; background: none; cursor: pointer; font-size: 12px; font-weight: 550; color: var(--_muted);
  padding: 3px 6px; border-radius: 6px; white-space: nowrap;
}
.action:hover { background: var(--_hover); color: var(--_text); }
.action.primary { color: var(--_accent); }
.action.subtle { opacity: 0; transition: opacity .1s; }
.item:hover .action.subtle, .item:focus-within .action.subtle, .item:focus .action.subtle { opacity: 1; }
.note { display: flex; align-items: center; justify-content: center; gap: 8px; padding: 16px; color: var(--_muted); font-size: 13px; }
.note[hidden] { display: none; }
.note.error { color: var(--_badge-bg); }
.empty { padding: 40px 24px 44px; text-align: center; }
.empty[hidden] { display: none; }
.empty-title { margin: 12px 0 4px; font-weight: 650; font-size: 15px; }
.empty-text { margin: 0; color: var(--_muted); }
.spinner { width: 14px; height: 14px; border-radius: 50%; border: 2px solid var(--_border); border-top-color: var(--_accent); animation: spin .7s linear infinite; }
@keyframes spin { to { transform: rotate(360deg); } }
.footer { padding: 9px 16px; border-top: 1px solid var(--_border); font-size: 11.5px; color: var(--_muted); text-align: center; }
.sr { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
@media (prefers-reduced-motion: reduce) { .bell.ring svg, .item.fresh, .dropdown { animation: none; } }
`;

// dist/inbox.js
var INBOX_EVENTS = [
  "notification.created",
  "notification.updated",
  "notification.expired",
  "inbox.read_all",
  "inbox.seen"
];
var PAGE_SIZE = 20;
var time = (iso) => {
  const t = iso ? Date.parse(iso) : NaN;
  return Number.isFinite(t) ? t : 0;
};
function compareNotifications(a, b) {
  const d = time(b.created_at) - time(a.created_at);
  if (d !== 0)
    return d;
  return a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
}
var Inbox = class {
  constructor(client, stream) {
    this.client = client;
    this.stream = stream;
    this.items = /* @__PURE__ */ new Map();
    this.counts = null;
    this.nextCursor = null;
    this.loaded = false;
    this.loadingMore = false;
    this.error = null;
    this.eventGen = 0;
    this.refreshing = null;
    this.refreshAgain = false;
    this.listeners = /* @__PURE__ */ new Set();
    this.unsubscribe = [];
    for (const type of INBOX_EVENTS) {
      this.unsubscribe.push(stream.on(type, (env) => this.onEvent(type, env.data, env.created_at)));
    }
    this.unsubscribe.push(stream.onResync(null, (reason) => {
      if (reason === "reset")
        this.eventGen++;
      void this.refresh();
    }));
  }
  /** Calls `fn` after every change. */
  onChange(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }
  dispose() {
    for (const u of this.unsubscribe.splice(0))
      u();
    this.listeners.clear();
  }
  get unread() {
    return this.counts ? this.counts.unread : null;
  }
  /** The loaded notifications, newest first, without the expired ones. */
  list(now = Date.now()) {
    return Array.from(this.items.values()).filter((n) => !n.expires_at || time(n.expires_at) > now).sort(compareNotifications);
  }
  unreadLoaded() {
    let n = 0;
    for (const it of this.items.values())
      if (!it.read_at)
        n++;
    return n;
  }
  emit(arrived = []) {
    for (const fn of this.listeners) {
      try {
        fn({ arrived });
      } catch (err) {
        console.error(err);
      }
    }
  }
  setCounts(c) {
    const counts = c;
    if (!counts || typeof counts.unread !== "number")
      return;
    this.counts = { unread: counts.unread, unseen: counts.unseen, total: counts.total };
  }
  /** The oldest loaded item bounds what we know: older ones come with pagination. */
  inLoadedRange(n) {
    if (!this.loaded || this.nextCursor === null)
      return true;
    let oldest = null;
    for (const it of this.items.values())
      if (!oldest || compareNotifications(it, oldest) > 0)
        oldest = it;
    return !oldest || compareNotifications(n, oldest) <= 0;
  }
  upsert(n) {
    if (!n || typeof n.id !== "string")
      return;
    if (n.archived_at) {
      this.items.delete(n.id);
      return;
    }
    if (!this.items.has(n.id) && !this.inLoadedRange(n))
      return;
    this.items.set(n.id, n);
  }
  onEvent(type, data, at) {
    this.eventGen++;
    const arrived = [];
    if (type === "notification.created" || type === "notification.updated") {
      const n = data?.notification;
      const isNew = !!n && !this.items.has(n.id);
      this.upsert(n);
      if (type === "notification.created" && n && isNew && this.items.has(n.id))
        arrived.push(n.id);
    } else if (type === "notification.expired") {
      const n = data?.notification;
      if (n && typeof n.id === "string")
        this.items.delete(n.id);
    } else {
      const field = type === "inbox.read_all" ? "read_at" : "seen_at";
      const when = at || (/* @__PURE__ */ new Date()).toISOString();
      const cutoff = time(when);
      for (const [id, n] of this.items) {
        if (!n[field] && time(n.created_at) <= cutoff)
          this.items.set(id, { ...n, [field]: when });
      }
    }
    this.setCounts(data?.counts);
    this.emit(arrived);
  }
  fetchPage(cursor) {
    return this.client.listNotifications({ status: "all", limit: PAGE_SIZE, cursor });
  }
  /** Counts and the first page, retried while inbox events race with it. Single-flight. */
  refresh() {
    if (this.refreshing) {
      this.refreshAgain = true;
      return this.refreshing;
    }
    this.refreshing = (async () => {
      for (let attempt = 0; attempt < 5; attempt++) {
        this.refreshAgain = false;
        const gen = this.eventGen;
        let counts;
        let page;
        try {
          [counts, page] = await Promise.all([this.client.counts(), this.fetchPage(null)]);
        } catch {
          this.error = "Couldn't load notifications.";
          this.emit();
          return;
        }
        const raced = this.eventGen !== gen || this.refreshAgain;
        if (raced && attempt < 4)
          continue;
        this.items.clear();
        for (const n of page.items || [])
          if (n && n.id && !n.archived_at)
            this.items.set(n.id, n);
        this.nextCursor = page.next_cursor || null;
        this.loaded = true;
        this.error = null;
        this.setCounts(counts);
        this.emit();
        return;
      }
    })().finally(() => {
      this.refreshing = null;
    });
    return this.refreshing;
  }
  /** The next (older) page, for infinite scroll. */
  async loadMore() {
    if (this.loadingMore || !this.loaded || !this.nextCursor)
      return;
    this.loadingMore = true;
    this.emit();
    const cursor = this.nextCursor;
    try {
      const page = await this.fetchPage(cursor);
      if (this.nextCursor === cursor) {
        for (const n of page.items || []) {
          if (!this.items.has(n.id) && !n.archived_at)
            this.items.set(n.id, n);
        }
        this.nextCursor = page.next_cursor || null;
      }
    } catch {
      this.error = "Couldn't load more notifications.";
    } finally {
      this.loadingMore = false;
      this.emit();
    }
  }
  async refreshCounts() {
    const gen = this.eventGen;
    try {
      const c = await this.client.counts();
      if (this.eventGen === gen) {
        this.setCounts(c);
        this.emit();
      }
    } catch {
    }
  }
  /** Marks a notification read, unread or archived: at once here, exactly when the event comes. */
  async setState(id, action) {
    const n = this.items.get(id);
    if (!n)
      return;
    const gen = this.eventGen;
    const wasUnread = !n.read_at;
    const c = this.counts;
    if (action === "archive") {
      this.items.delete(id);
      if (wasUnread && c)
        c.unread = Math.max(0, c.unread - 1);
    } else if (action === "read" && wasUnread) {
      this.items.set(id, { ...n, read_at: (/* @__PURE__ */ new Date()).toISOString() });
      if (c)
        c.unread = Math.max(0, c.unread - 1);
    } else if (action === "unread" && !wasUnread) {
      this.items.set(id, { ...n, read_at: null });
      if (c)
        c.unread += 1;
    }
    this.emit();
    try {
      const call = action === "read" ? this.client.markRead(id) : action === "unread" ? this.client.markUnread(id) : this.client.archive(id);
      const updated = await call;
      if (this.eventGen === gen && updated && updated.id === id) {
        this.upsert(updated);
        this.emit();
      }
      if (this.stream.status !== "live")
        void this.refreshCounts();
    } catch (err) {
      this.error = action === "archive" ? "Couldn't archive that notification." : "Couldn't update that notification.";
      void this.refresh();
      throw err;
    }
  }
  async markAllRead() {
    const gen = this.eventGen;
    const now = (/* @__PURE__ */ new Date()).toISOString();
    for (const [id, n] of this.items)
      if (!n.read_at)
        this.items.set(id, { ...n, read_at: now });
    if (this.counts)
      this.counts.unread = 0;
    this.emit();
    try {
      const c = await this.client.readAll();
      if (this.eventGen === gen) {
        this.setCounts(c);
        this.emit();
      }
    } catch (err) {
      void this.refresh();
      throw err;
    }
  }
  async markSeen() {
    const gen = this.eventGen;
    try {
      const c = await this.client.seen();
      if (this.eventGen === gen) {
        this.setCounts(c);
        this.emit();
      }
    } catch {
    }
  }
};

// dist/connection.js
var RECONNECT_FIRST_MS = 1e3;
var RECONNECT_MAX_MS = 5e3;
var Connection = class {
  constructor(url, getToken, wantOwn, on) {
    this.url = url;
    this.getToken = getToken;
    this.wantOwn = wantOwn;
    this.on = on;
    this.lastEventId = null;
    this.covered = /* @__PURE__ */ new Set();
    this.ownTopics = null;
    this.status = "connecting";
    this.openTopics = [];
    this.extras = /* @__PURE__ */ new Set();
    this.refusedTopics = /* @__PURE__ */ new Set();
    this.types = /* @__PURE__ */ new Set();
    this.es = null;
    this.gen = 0;
    this.attempts = 0;
    this.reopenQueued = false;
    this.sawId = false;
    this.started = false;
    this.closed = false;
    this.fatal = false;
    this.onOnline = () => this.wake();
    this.onVisible = () => {
      if (document.visibilityState === "visible")
        this.wake();
    };
  }
  /** Adds topics (beyond the user's own); an open stream is reopened with them. */
  addTopics(topics, own = false) {
    let changed = false;
    if (own && !this.wantOwn) {
      this.wantOwn = true;
      changed = true;
    }
    for (const t of topics) {
      if (!t || this.extras.has(t) || this.refusedTopics.has(t) || this.ownTopics?.includes(t))
        continue;
      this.extras.add(t);
      changed = true;
    }
    if (changed)
      this.reopenSoon();
  }
  /** Listens for one more event type (no reconnect needed). */
  addType(type) {
    if (this.types.has(type))
      return;
    this.types.add(type);
    if (this.es)
      this.listen(this.es, type);
  }
  start() {
    if (this.started || this.closed)
      return;
    this.started = true;
    if (typeof window !== "undefined") {
      window.addEventListener("online", this.onOnline);
      document.addEventListener("visibilitychange", this.onVisible);
    }
    void this.connect();
  }
  close() {
    this.closed = true;
    this.gen++;
    clearTimeout(this.reconnectTimer);
    this.closeStream();
    if (typeof window !== "undefined") {
      window.removeEventListener("online", this.onOnline);
      document.removeEventListener("visibilitychange", this.onVisible);
    }
  }
  wake() {
    if (this.started && !this.closed && !this.fatal && !this.es)
      void this.connect();
  }
  setStatus(status) {
    this.status = status;
    this.on.status(status, this.openTopics, this.ownTopics);
  }
  closeStream() {
    if (this.es) {
      this.es.close();
      this.es = null;
    }
    this.openTopics = [];
  }
  scheduleReconnect() {
    if (this.closed || this.fatal)
      return;
    clearTimeout(this.reconnectTimer);
    const delay = this.attempts === 0 ? RECONNECT_FIRST_MS : Math.min(RECONNECT_FIRST_MS * (this.attempts + 1), RECONNECT_MAX_MS) + Math.random() * 300;
    this.attempts++;
    this.reconnectTimer = setTimeout(() => void this.connect(), delay);
  }
  reopenSoon() {
    if (!this.started || this.closed || this.reopenQueued)
      return;
    this.reopenQueued = true;
    setTimeout(() => {
      this.reopenQueued = false;
      if (!this.closed && !this.fatal)
        void this.connect();
    }, 0);
  }
  /**
   * Records a frame's position. Events report theirs with the event itself;
   * other frames (the bare `id: <head>`, `herald.reset`) as a position.
   */
  track(e, isEvent = false) {
    if (!e.lastEventId)
      return;
    this.sawId = true;
    this.lastEventId = e.lastEventId;
    const seq = Number(e.lastEventId);
    if (!isEvent && Number.isSafeInteger(seq))
      this.on.position(seq);
  }
  listen(es, type) {
    es.addEventListener(type, (ev) => {
      if (es !== this.es)
        return;
      const e = ev;
      this.track(e, true);
      let env;
      try {
        env = JSON.parse(e.data);
      } catch {
        return;
      }
      const seq = Number(e.lastEventId || env.seq);
      this.on.event(type, env, seq);
    });
  }
  async mint() {
    const extras = Array.from(this.extras);
    const normalize = (answer, asked2) => typeof answer === "string" ? { token: answer, topics: asked2 ?? this.ownTopics ?? [] } : { token: answer.token, topics: Array.isArray(answer.topics) ? answer.topics : asked2 ?? [] };
    if (!extras.length) {
      const t = normalize(await this.getToken(null), null);
      this.ownTopics = t.topics;
      return t;
    }
    if (this.wantOwn && !this.ownTopics) {
      this.ownTopics = normalize(await this.getToken(null), null).topics;
    }
    const asked = this.wantOwn ? Array.from(/* @__PURE__ */ new Set([...this.ownTopics ?? [], ...extras])) : extras;
    return normalize(await this.getToken(asked), asked);
  }
  refuse(error) {
    const named = /`([^`]+)`/.exec(error.problem?.detail ?? error.message ?? "")?.[1];
    const topics = named && this.extras.has(named) ? [named] : Array.from(this.extras);
    for (const t of topics) {
      this.extras.delete(t);
      this.refusedTopics.add(t);
    }
    this.on.refused(topics);
  }
  async connect() {
    if (this.closed || this.fatal)
      return;
    clearTimeout(this.reconnectTimer);
    const gen = ++this.gen;
    this.closeStream();
    if (!this.wantOwn && this.extras.size === 0) {
      this.setStatus("offline");
      return;
    }
    let token;
    try {
      token = await this.mint();
    } catch (err) {
      if (gen !== this.gen || this.closed)
        return;
      const e = err;
      if (e && e.status === 403 && this.extras.size) {
        this.refuse(e);
        void this.connect();
        return;
      }
      if (e && (e.status === 401 || e.status === 403)) {
        this.fatal = true;
        this.setStatus("offline");
        this.on.fatal(err);
        return;
      }
      this.setStatus("reconnecting");
      this.scheduleReconnect();
      return;
    }
    if (gen !== this.gen || this.closed)
      return;
    const streamTopics = token.topics;
    const resumeFrom = this.lastEventId;
    const covered = this.covered;
    let url = this.url.replace(/\/+$/, "") + "/v1/stream?access_token=" + encodeURIComponent(token.token);
    if (resumeFrom)
      url += "&last_event_id=" + encodeURIComponent(resumeFrom);
    const es = new EventSource(url);
    this.sawId = false;
    let opened = false;
    this.es = es;
    es.addEventListener("open", () => {
      if (es !== this.es)
        return;
      this.attempts = 0;
      this.openTopics = streamTopics;
      const first = !opened;
      opened = true;
      this.setStatus("live");
      if (first) {
        this.covered = new Set(streamTopics);
        if (!resumeFrom) {
          this.on.resync("open", streamTopics);
        } else {
          const fresh = streamTopics.filter((t) => !covered.has(t));
          if (fresh.length)
            this.on.resync("open", fresh);
        }
      } else if (!this.sawId) {
        this.on.resync("open", streamTopics);
      }
    });
    es.addEventListener("error", () => {
      if (es !== this.es)
        return;
      if (es.readyState === EventSource.CLOSED) {
        this.closeStream();
        this.setStatus("reconnecting");
        this.scheduleReconnect();
      } else {
        this.openTopics = [];
        this.setStatus("reconnecting");
      }
    });
    for (const type of this.types)
      this.listen(es, type);
    es.addEventListener("message", (ev) => {
      if (es === this.es)
        this.track(ev);
    });
    es.addEventListener("herald.reset", (ev) => {
      if (es !== this.es)
        return;
      this.track(ev);
      this.on.resync("reset", streamTopics);
    });
    es.addEventListener("herald.reauth", () => {
      if (es === this.es)
        void this.connect();
    });
  }
};

// dist/stream.js
var ELECTION_WAIT_MS = 120;
function randomId() {
  const c = globalThis.crypto;
  if (c && typeof c.randomUUID === "function")
    return c.randomUUID();
  return Math.random().toString(36).slice(2) + Date.now().toString(36);
}
function canShare() {
  return typeof BroadcastChannel === "function" && typeof navigator !== "undefined" && !!navigator.locks;
}
var HeraldStream = class {
  constructor(options) {
    this.tab = randomId();
    this.topics = /* @__PURE__ */ new Set();
    this.handlers = /* @__PURE__ */ new Map();
    this.resyncs = /* @__PURE__ */ new Map();
    this.refusedHooks = /* @__PURE__ */ new Map();
    this.stateListeners = /* @__PURE__ */ new Set();
    this.errorListeners = /* @__PURE__ */ new Set();
    this._role = "idle";
    this._status = "connecting";
    this.openTopics = [];
    this.ownTopics = null;
    this._lastSeq = 0;
    this.conn = null;
    this.channel = null;
    this.releaseLock = null;
    this.lockAbort = null;
    this.greeted = false;
    this.closed = false;
    this.started = false;
    this.peerTopics = /* @__PURE__ */ new Set();
    this.peerOwn = false;
    this.peerTypes = /* @__PURE__ */ new Set();
    this.election = null;
    this.onPageHide = () => {
      if (this._role === "leader")
        this.post({ t: "state", tab: this.tab, status: "reconnecting", openTopics: [], ownTopics: this.ownTopics });
    };
    if (!options || !options.url)
      throw new TypeError("HeraldStream: url is required");
    if (typeof options.getToken !== "function")
      throw new TypeError("HeraldStream: getToken is required");
    this.url = options.url.replace(/\/+$/, "");
    this.getToken = options.getToken;
    this.own = options.own !== false;
    this.share = options.share !== false && canShare();
    this.key = options.key || this.url;
    for (const t of options.topics || [])
      if (t)
        this.topics.add(t);
  }
  /** `solo`, `leader` (this tab holds the stream) or `follower` (fed by the leader). */
  get role() {
    return this._role;
  }
  get status() {
    return this._status;
  }
  /** The highest event position this tab has seen. */
  get lastSeq() {
    return this._lastSeq;
  }
  /** True when the stream is live and carries `topic`. */
  isLive(topic) {
    return this._status === "live" && this.openTopics.includes(topic);
  }
  /** Calls `fn(envelope)` for every event of `type` on this tab's topics, once, in `seq` order. */
  on(type, fn) {
    let set = this.handlers.get(type);
    if (!set) {
      set = /* @__PURE__ */ new Set();
      this.handlers.set(type, set);
      this.conn?.addType(type);
      if (this._role === "follower")
        this.hello();
    }
    set.add(fn);
    return () => set?.delete(fn);
  }
  /**
   * Calls `fn(reason)` when the state of `topic` (null: the user's own
   * topics) must be refetched over REST: the stream could not prove it saw
   * everything (`open`), or the gateway sent `herald.reset` (`reset`).
   */
  onResync(topic, fn) {
    let set = this.resyncs.get(topic);
    if (!set) {
      set = /* @__PURE__ */ new Set();
      this.resyncs.set(topic, set);
    }
    set.add(fn);
    return () => set?.delete(fn);
  }
  /** Calls `fn(status)` on every change of the status or of the open topics. */
  onState(fn) {
    this.stateListeners.add(fn);
    return () => this.stateListeners.delete(fn);
  }
  /** Calls `fn(error)` when stream tokens are refused for the user's own topics (401/403). */
  onError(fn) {
    this.errorListeners.add(fn);
    return () => this.errorListeners.delete(fn);
  }
  /** Follows one more topic. `onRefused` runs if the API will not grant it. */
  addTopic(topic, options = {}) {
    if (!topic || this.topics.has(topic))
      return;
    this.topics.add(topic);
    if (options.onRefused)
      this.refusedHooks.set(topic, options.onRefused);
    if (this._role === "leader" || this._role === "solo")
      this.conn?.addTopics([topic]);
    else if (this._role === "follower")
      this.hello();
  }
  /** Starts streaming (idempotent). */
  start() {
    if (this.started || this.closed)
      return;
    this.started = true;
    if (!this.share) {
      this._role = "solo";
      this.lead();
      return;
    }
    this._role = "follower";
    this.channel = new BroadcastChannel("herald:" + this.key);
    this.channel.onmessage = (e) => this.onMessage(e.data);
    this.hello();
    this.lockAbort = new AbortController();
    const locks = navigator.locks;
    locks.request("herald-leader:" + this.key, { signal: this.lockAbort.signal }, () => new Promise((resolve) => {
      if (this.closed)
        return resolve();
      this.releaseLock = resolve;
      this.lead();
    })).catch(() => {
    });
    window.addEventListener("pagehide", this.onPageHide);
  }
  /** Stops streaming; a leader hands the stream to the next tab. */
  close() {
    if (this.closed)
      return;
    this.closed = true;
    if (this._role === "leader")
      this.onPageHide();
    this.conn?.close();
    this.conn = null;
    this.lockAbort?.abort();
    this.releaseLock?.();
    this.channel?.close();
    this.channel = null;
    if (typeof window !== "undefined")
      window.removeEventListener("pagehide", this.onPageHide);
    this._role = "idle";
  }
  // ------------------------------------------------------------- delivery (every role)
  wants(topic) {
    if (this.topics.has(topic))
      return true;
    if (!this.own)
      return false;
    return this.ownTopics === null ? !this.peerTopics.has(topic) : this.ownTopics.includes(topic);
  }
  deliver(seq, type, env) {
    if (Number.isSafeInteger(seq)) {
      if (seq <= this._lastSeq)
        return;
      this._lastSeq = seq;
    }
    if (!env || typeof env.topic !== "string" || !this.wants(env.topic))
      return;
    for (const fn of this.handlers.get(type) || []) {
      try {
        fn(env);
      } catch (err) {
        console.error(err);
      }
    }
  }
  position(seq) {
    if (seq > this._lastSeq)
      this._lastSeq = seq;
  }
  resyncLocal(reason, topics) {
    for (const [topic, fns] of this.resyncs) {
      const hit = topics === "all" ? topic === null || this.topics.has(topic) : topic === null ? this.own && topics.some((t) => this.ownTopics === null || this.ownTopics.includes(t)) : topics.includes(topic);
      if (!hit)
        continue;
      for (const fn of fns) {
        try {
          fn(reason);
        } catch (err) {
          console.error(err);
        }
      }
    }
  }
  setState(status, openTopics, ownTopics) {
    this._status = status;
    this.openTopics = openTopics.slice();
    if (ownTopics)
      this.ownTopics = ownTopics.slice();
    for (const fn of this.stateListeners) {
      try {
        fn(status);
      } catch (err) {
        console.error(err);
      }
    }
  }
  refusedLocal(topics) {
    for (const t of topics) {
      if (!this.topics.delete(t))
        continue;
      const hook = this.refusedHooks.get(t);
      this.refusedHooks.delete(t);
      try {
        hook?.();
      } catch (err) {
        console.error(err);
      }
    }
  }
  fatalLocal(error) {
    for (const fn of this.errorListeners) {
      try {
        fn(error);
      } catch (err) {
        console.error(err);
      }
    }
  }
  // ------------------------------------------------------------- leading
  post(msg) {
    try {
      this.channel?.postMessage(msg);
    } catch {
    }
  }
  hello() {
    this.post({
      t: "hello",
      tab: this.tab,
      topics: Array.from(this.topics),
      own: this.own,
      types: Array.from(this.handlers.keys()),
      seq: this._lastSeq
    });
  }
  /** This tab now owns the stream: gather the other tabs' wishes and positions, then open it. */
  lead() {
    if (this.closed)
      return;
    const solo = this._role === "solo";
    this._role = solo ? "solo" : "leader";
    if (solo) {
      this.openConnection(this.openTopics);
      return;
    }
    const covered = this.openTopics;
    this.election = { seq: this._lastSeq };
    this.post({ t: "elect", tab: this.tab });
    setTimeout(() => {
      if (this.closed || !this.election)
        return;
      this.position(this.election.seq);
      this.election = null;
      this.openConnection(covered);
    }, ELECTION_WAIT_MS);
  }
  openConnection(covered) {
    const conn = new Connection(this.url, this.getToken, this.own || this.peerOwn, {
      event: (type, env, seq) => {
        this.post({ t: "event", seq, type, env });
        this.deliver(seq, type, env);
      },
      position: (seq) => {
        this.post({ t: "pos", seq });
        this.position(seq);
      },
      resync: (reason, topics) => {
        this.post({ t: "resync", reason, topics });
        this.resyncLocal(reason, topics);
      },
      status: (status, openTopics, ownTopics) => {
        this.post({ t: "state", tab: this.tab, status, openTopics, ownTopics });
        this.setState(status, openTopics, ownTopics);
      },
      refused: (topics) => {
        this.post({ t: "refused", topics });
        this.refusedLocal(topics);
      },
      fatal: (error) => {
        const e = error;
        this.post({ t: "fatal", status: typeof e?.status === "number" ? e.status : null, message: String(e?.message || error) });
        this.fatalLocal(error);
      }
    });
    if (this._lastSeq > 0) {
      conn.lastEventId = String(this._lastSeq);
      conn.covered = new Set(covered);
    }
    if (this.ownTopics)
      conn.ownTopics = this.ownTopics.slice();
    for (const type of this.handlers.keys())
      conn.addType(type);
    for (const type of this.peerTypes)
      conn.addType(type);
    conn.addTopics([...this.topics, ...this.peerTopics]);
    this.conn = conn;
    conn.start();
  }
  onMessage(msg) {
    if (this.closed || !msg || typeof msg !== "object")
      return;
    switch (msg.t) {
      case "hello":
        this.peerTypesAndTopics(msg);
        if (this.election && msg.seq > this.election.seq)
          this.election.seq = msg.seq;
        if (this._role === "leader" && this.conn) {
          this.post({ t: "state", tab: this.tab, status: this.conn.status, openTopics: this.conn.openTopics, ownTopics: this.conn.ownTopics });
        }
        break;
      case "elect":
        if (this._role === "follower")
          this.hello();
        break;
      case "state":
        if (this._role !== "follower")
          break;
        this.setState(msg.status, msg.openTopics, msg.ownTopics);
        if (!this.greeted) {
          this.greeted = true;
          this.resyncLocal("open", "all");
        }
        break;
      case "event":
        if (this._role === "follower" || this.election)
          this.deliver(msg.seq, msg.type, msg.env);
        break;
      case "pos":
        this.position(msg.seq);
        break;
      case "resync":
        if (this._role === "follower")
          this.resyncLocal(msg.reason, msg.topics);
        break;
      case "refused":
        this.refusedLocal(msg.topics);
        break;
      case "fatal":
        if (this._role === "follower") {
          const error = Object.assign(new Error(msg.message), { status: msg.status });
          this.fatalLocal(error);
        }
        break;
    }
  }
  peerTypesAndTopics(msg) {
    for (const t of msg.types) {
      if (this.peerTypes.has(t))
        continue;
      this.peerTypes.add(t);
      this.conn?.addType(t);
    }
    const fresh = msg.topics.filter((t) => !this.peerTopics.has(t));
    for (const t of fresh)
      this.peerTopics.add(t);
    const own = msg.own && !this.peerOwn;
    if (msg.own)
      this.peerOwn = true;
    if (this.conn && (fresh.length || own))
      this.conn.addTopics(fresh, own);
  }
};

// dist/bell.js
var BELL_ICON = '<svg viewBox="0 0 24 24" width="22" height="22" aria-hidden="true"><path d="M18 8a6 6 0 1 0-12 0c0 7-3 9-3 9h18s-3-2-3-9" fill="none" stroke="currentColor" stroke-width="1.8" stroke-linecap="round" stroke-linejoin="round"/><path d="M13.73 21a2 2 0 0 1-3.46 0" fill="none" stroke="currentColor" stroke-width="1.8" stroke-linecap="round" stroke-linejoin="round"/></svg>';
var HUES = [239, 199, 262, 160, 330, 24, 187, 292];
function hue(text) {
  let h = 0;
  for (let i = 0; i < text.length; i++)
    h = h * 31 + text.charCodeAt(i) >>> 0;
  return HUES[h % HUES.length] ?? 239;
}
function relativeTime(iso, now) {
  const t = Date.parse(iso);
  if (!Number.isFinite(t))
    return "";
  const s = Math.max(0, Math.round((now - t) / 1e3));
  if (s < 45)
    return "just now";
  const m = Math.round(s / 60);
  if (m < 60)
    return m + "m ago";
  const h = Math.round(m / 60);
  if (h < 24)
    return h + "h ago";
  const d = Math.round(h / 24);
  if (d === 1)
    return "yesterday";
  if (d < 7)
    return d + "d ago";
  const date = new Date(t);
  const opts = { month: "short", day: "numeric" };
  if (date.getFullYear() !== new Date(now).getFullYear())
    opts.year = "numeric";
  return date.toLocaleDateString(void 0, opts);
}
function safeUrl(raw) {
  if (typeof raw !== "string" || !raw)
    return null;
  try {
    const u = new URL(raw, window.location.href);
    return u.protocol === "http:" || u.protocol === "https:" ? u.href : null;
  } catch {
    return null;
  }
}
function tokenSubject(token) {
  try {
    const part = (token.split(".")[1] ?? "").replace(/-/g, "+").replace(/_/g, "/");
    const bytes = Uint8Array.from(atob(part + "===".slice((part.length + 3) % 4)), (c) => c.charCodeAt(0));
    const sub = JSON.parse(new TextDecoder().decode(bytes)).sub;
    return typeof sub === "string" ? sub : null;
  } catch {
    return null;
  }
}
function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className)
    node.className = className;
  if (text !== void 0)
    node.textContent = text;
  return node;
}
var Base = typeof HTMLElement === "function" ? HTMLElement : class {
};
var HeraldBell = class extends Base {
  static get observedAttributes() {
    return ["api-url", "stream-url", "token"];
  }
  constructor() {
    super();
    this._getToken = null;
    this._stream = null;
    this.ownsStream = false;
    this._client = null;
    this._inbox = null;
    this.initGen = 0;
    this.open = false;
    this.lastUnread = null;
    this.rows = /* @__PURE__ */ new Map();
    this.fresh = /* @__PURE__ */ new Set();
    this.unsubs = [];
    this.onDocumentClick = (e) => {
      if (this.open && !e.composedPath().includes(this))
        this.closeDropdown();
    };
    const root = this.attachShadow({ mode: "open" });
    const style = el("style");
    style.textContent = BELL_CSS;
    const id = "herald-dd-" + Math.random().toString(36).slice(2, 8);
    const bell = el("button", "bell");
    bell.type = "button";
    bell.part.add("button");
    bell.dataset.testid = "bell";
    bell.setAttribute("aria-haspopup", "dialog");
    bell.setAttribute("aria-expanded", "false");
    bell.setAttribute("aria-controls", id);
    bell.setAttribute("aria-label", "Notifications");
    bell.innerHTML = BELL_ICON;
    const badge = el("span", "badge");
    badge.part.add("badge");
    badge.dataset.testid = "badge";
    badge.hidden = true;
    badge.setAttribute("aria-hidden", "true");
    bell.append(badge);
    const dropdown = el("section", "dropdown");
    dropdown.id = id;
    dropdown.part.add("dropdown");
    dropdown.dataset.testid = "dropdown";
    dropdown.setAttribute("role", "dialog");
    dropdown.setAttribute("aria-label", "Notifications");
    dropdown.hidden = true;
    const head = el("header", "head");
    const title = el("h2", "title", "Notifications ");
    const count = el("span", "count");
    title.append(count);
    const markAll = el("button", "link", "Mark all as read");
    markAll.type = "button";
    markAll.dataset.testid = "mark-all-read";
    head.append(title, markAll);
    const scroll = el("div", "scroll");
    scroll.dataset.testid = "list";
    const list = el("ul", "items");
    list.setAttribute("role", "list");
    list.setAttribute("aria-label", "Notifications, newest first");
    const empty = el("div", "empty");
    empty.dataset.testid = "empty";
    empty.hidden = true;
    empty.append(el("p", "empty-title", "You're all caught up"), el("p", "empty-text", "New notifications will show up here as they happen."));
    const loading = el("div", "note");
    loading.dataset.testid = "loading";
    loading.hidden = true;
    loading.append(el("span", "spinner"), document.createTextNode("Loading\u2026"));
    const error = el("div", "note error");
    error.hidden = true;
    const errorText = el("span");
    const retry = el("button", "link", "Retry");
    retry.type = "button";
    error.append(errorText, retry);
    scroll.append(list, empty, loading, error);
    const footer = el("footer", "footer", "Delivered live by Herald");
    dropdown.append(head, scroll, footer);
    const live = el("div", "sr");
    live.setAttribute("aria-live", "polite");
    root.append(style, bell, dropdown, live);
    this.ui = { bell, badge, dropdown, count, markAll, scroll, list, empty, loading, error, errorText, live };
    bell.addEventListener("click", (e) => {
      e.stopPropagation();
      if (this.open)
        this.closeDropdown();
      else
        this.openDropdown();
    });
    markAll.addEventListener("click", () => void this._inbox?.markAllRead().catch(() => this.render()));
    retry.addEventListener("click", () => {
      if (this._inbox)
        this._inbox.error = null;
      void this._inbox?.refresh();
    });
    scroll.addEventListener("scroll", () => this.fillViewport(), { passive: true });
    list.addEventListener("click", (e) => this.onListClick(e));
    list.addEventListener("keydown", (e) => this.onListKey(e));
    dropdown.addEventListener("keydown", (e) => {
      if (e.key === "Escape") {
        e.stopPropagation();
        this.closeDropdown();
        this.ui.bell.focus();
      }
    });
    bell.addEventListener("keydown", (e) => {
      if (e.key === "Escape" && this.open)
        this.closeDropdown();
      if (e.key === "ArrowDown" && this.open) {
        e.preventDefault();
        this.focusItem(0);
      }
    });
  }
  // ------------------------------------------------------------- public properties
  get getToken() {
    return this._getToken;
  }
  set getToken(fn) {
    this._getToken = typeof fn === "function" ? fn : null;
    this.restart();
  }
  /** The stream the bell listens to. Set it before the bell connects to share the page's own. */
  get stream() {
    return this._stream;
  }
  set stream(s) {
    if (s === this._stream)
      return;
    this.teardown();
    this._stream = s;
    this.ownsStream = false;
    this.restart();
  }
  get client() {
    return this._client;
  }
  get inbox() {
    return this._inbox;
  }
  /** The exact unread count, or null before it is known. */
  get unread() {
    return this._inbox?.unread ?? null;
  }
  // ------------------------------------------------------------- lifecycle
  connectedCallback() {
    document.addEventListener("click", this.onDocumentClick);
    this.ageTimer = setInterval(() => {
      if (this.open)
        this.render();
    }, 3e4);
    this.restart();
  }
  disconnectedCallback() {
    document.removeEventListener("click", this.onDocumentClick);
    clearInterval(this.ageTimer);
    this.teardown();
  }
  attributeChangedCallback(_name, oldValue, newValue) {
    if (oldValue === newValue)
      return;
    this.teardown();
    this.restart();
  }
  tokenSource() {
    const fn = this._getToken;
    if (fn)
      return async () => await fn() || null;
    const attr = this.getAttribute("token");
    return attr ? async () => this.getAttribute("token") : null;
  }
  /** Starts once the bell is in a document and has its URLs and a token source. */
  restart() {
    const gen = ++this.initGen;
    queueMicrotask(() => {
      if (gen === this.initGen)
        void this.init(gen);
    });
  }
  async init(gen) {
    if (!this.isConnected || this._inbox)
      return;
    const apiUrl = this.getAttribute("api-url");
    const streamUrl = this.getAttribute("stream-url");
    const token = this.tokenSource();
    if (!apiUrl || !token || !streamUrl && !this._stream)
      return;
    const client = new HeraldClient({ baseUrl: apiUrl, token, onUnauthorized: () => this.showError("Your session has expired (401).") });
    let stream = this._stream;
    if (!stream) {
      let sub = null;
      try {
        const t = await token();
        sub = t ? tokenSubject(t) : null;
      } catch {
      }
      if (gen !== this.initGen || !this.isConnected || this._inbox)
        return;
      stream = new HeraldStream({
        url: streamUrl,
        getToken: (topics) => client.createStreamToken(topics),
        key: `${streamUrl}|${sub ?? ""}`,
        share: this.getAttribute("share") !== "false"
      });
      this._stream = stream;
      this.ownsStream = true;
    }
    this._client = client;
    const inbox = new Inbox(client, stream);
    this._inbox = inbox;
    this.unsubs.push(inbox.onChange((change) => this.onInboxChange(change.arrived)), stream.onState((status) => {
      this.dataset.status = status;
    }), stream.onError(() => this.showError("The server refused this token (401/403).")));
    this.dataset.status = stream.status;
    this.render();
    void inbox.refresh();
    if (this.ownsStream)
      stream.start();
  }
  teardown() {
    this.initGen++;
    for (const u of this.unsubs.splice(0))
      u();
    this._inbox?.dispose();
    this._inbox = null;
    if (this.ownsStream) {
      this._stream?.close();
      this._stream = null;
      this.ownsStream = false;
    }
    for (const r of this.rows.values())
      r.li.remove();
    this.rows.clear();
  }
  showError(text) {
    this.ui.errorText.textContent = text;
    this.ui.error.hidden = false;
    this.ui.bell.title = text;
  }
  // ------------------------------------------------------------- dropdown
  openDropdown() {
    if (this.open)
      return;
    this.open = true;
    this.ui.dropdown.hidden = false;
    this.ui.bell.setAttribute("aria-expanded", "true");
    const inbox = this._inbox;
    if (inbox && !inbox.loaded)
      void inbox.refresh();
    this.render();
    this.markSeenSoon(0);
    this.fillViewport();
    this.dispatchEvent(new CustomEvent("herald-open", { bubbles: true, composed: true }));
  }
  closeDropdown() {
    if (!this.open)
      return;
    this.open = false;
    this.ui.dropdown.hidden = true;
    this.ui.bell.setAttribute("aria-expanded", "false");
  }
  markSeenSoon(delay) {
    clearTimeout(this.seenTimer);
    this.seenTimer = setTimeout(() => void this._inbox?.markSeen(), delay);
  }
  /** Infinite scroll: near the bottom (or nothing to scroll yet), fetch the next page. */
  fillViewport() {
    const inbox = this._inbox;
    if (!this.open || !inbox || !inbox.nextCursor || inbox.loadingMore)
      return;
    const s = this.ui.scroll;
    if (s.scrollHeight - s.scrollTop - s.clientHeight < 120)
      void inbox.loadMore().then(() => this.fillViewport());
  }
  ring() {
    const b = this.ui.bell;
    b.classList.remove("ring");
    void b.offsetWidth;
    b.classList.add("ring");
    clearTimeout(this.ringTimer);
    this.ringTimer = setTimeout(() => b.classList.remove("ring"), 800);
  }
  onInboxChange(arrived) {
    for (const id of arrived)
      this.fresh.add(id);
    if (arrived.length) {
      this.ring();
      if (this.open)
        this.markSeenSoon(600);
      const n = this._inbox?.items.get(arrived[arrived.length - 1]);
      if (n)
        this.ui.live.textContent = "New notification: " + n.title;
    }
    this.render();
    this.fillViewport();
  }
  // ------------------------------------------------------------- list interaction
  onListClick(e) {
    const li = e.target.closest("li.item");
    if (!li || !this._inbox)
      return;
    const id = li.dataset.id;
    const button = e.target.closest("button[data-action]");
    if (button) {
      e.stopPropagation();
      void this._inbox.setState(id, button.dataset.action).catch(() => this.render());
      return;
    }
    this.activate(id);
  }
  activate(id) {
    const n = this._inbox?.items.get(id);
    if (!n || !this._inbox)
      return;
    if (!n.read_at)
      void this._inbox.setState(id, "read").catch(() => this.render());
    const link = safeUrl(n.action_url);
    const go = this.dispatchEvent(new CustomEvent("herald-select", { bubbles: true, composed: true, cancelable: true, detail: n }));
    if (link && go)
      window.location.assign(link);
  }
  items() {
    return Array.from(this.ui.list.children);
  }
  focusItem(index) {
    const items = this.items();
    if (!items.length) {
      this.ui.markAll.focus();
      return;
    }
    const i = Math.max(0, Math.min(items.length - 1, index));
    for (const [k, li] of items.entries())
      li.tabIndex = k === i ? 0 : -1;
    items[i]?.focus();
  }
  onListKey(e) {
    const items = this.items();
    const li = e.target.closest("li.item");
    if (!li)
      return;
    const i = items.indexOf(li);
    const moves = { ArrowDown: i + 1, ArrowUp: i - 1, Home: 0, End: items.length - 1 };
    if (e.key in moves) {
      e.preventDefault();
      this.focusItem(moves[e.key]);
      if (e.key === "ArrowDown" && i + 1 >= items.length)
        void this._inbox?.loadMore();
    } else if ((e.key === "Enter" || e.key === " ") && e.target === li) {
      e.preventDefault();
      this.activate(li.dataset.id);
    }
  }
  // ------------------------------------------------------------- rendering
  render() {
    const inbox = this._inbox;
    const unread = inbox ? inbox.unread : null;
    const { bell, badge, count, markAll } = this.ui;
    if (unread !== null)
      this.dataset.unread = String(unread);
    else
      delete this.dataset.unread;
    if (unread && unread > 0) {
      badge.textContent = String(unread);
      badge.hidden = false;
      bell.setAttribute("aria-label", `Notifications, ${unread} unread`);
    } else {
      badge.textContent = "";
      badge.hidden = true;
      bell.setAttribute("aria-label", "Notifications");
    }
    count.textContent = unread ? `${unread} unread` : "";
    markAll.disabled = !(unread && unread > 0) && !(inbox && inbox.unreadLoaded() > 0);
    if (unread !== this.lastUnread) {
      this.lastUnread = unread;
      if (inbox?.counts)
        this.dispatchEvent(new CustomEvent("herald-unread", { bubbles: true, composed: true, detail: { ...inbox.counts } }));
    }
    if (this.open)
      this.renderList();
  }
  renderList() {
    const inbox = this._inbox;
    if (!inbox)
      return;
    const now = Date.now();
    const sorted = inbox.list(now);
    const keep = /* @__PURE__ */ new Set();
    let prev = null;
    const focusable = this.items().find((li) => li.tabIndex === 0)?.dataset.id;
    for (const n of sorted) {
      keep.add(n.id);
      let row = this.rows.get(n.id);
      if (!row) {
        row = this.createRow(n.id);
        this.rows.set(n.id, row);
      }
      this.updateRow(row, n, now);
      const wanted = prev ? prev.nextSibling : this.ui.list.firstChild;
      if (wanted !== row.li)
        this.ui.list.insertBefore(row.li, wanted);
      prev = row.li;
    }
    for (const [id, row] of this.rows) {
      if (!keep.has(id)) {
        row.li.remove();
        this.rows.delete(id);
      }
    }
    const first = this.ui.list.firstElementChild;
    if (first && !(focusable && keep.has(focusable)))
      first.tabIndex = 0;
    for (const id of this.fresh)
      this.rows.get(id)?.li.classList.add("fresh");
    this.fresh.clear();
    const loading = !inbox.loaded && !inbox.error;
    this.ui.loading.hidden = !(loading || inbox.loadingMore);
    if (inbox.error)
      this.showError(inbox.error);
    else if (!this.ui.bell.title)
      this.ui.error.hidden = true;
    this.ui.empty.hidden = !(inbox.loaded && sorted.length === 0 && !inbox.nextCursor);
  }
  createRow(id) {
    const li = el("li", "item");
    li.part.add("item");
    li.dataset.testid = "notification";
    li.dataset.id = id;
    li.tabIndex = -1;
    const icon = el("div", "icon");
    icon.setAttribute("aria-hidden", "true");
    const main = el("div", "main");
    const title = el("div", "item-title");
    title.dataset.testid = "title";
    const body = el("div", "body");
    body.dataset.testid = "body";
    const meta = el("div", "meta");
    const when = el("time");
    when.dataset.testid = "time";
    const sep = el("span", void 0, "\xB7");
    sep.setAttribute("aria-hidden", "true");
    const cat = el("span", "cat");
    meta.append(when, sep, cat);
    const dot = el("span", "dot");
    dot.dataset.testid = "unread-dot";
    const actions = el("div", "actions");
    const toggle = el("button");
    toggle.type = "button";
    const archive = el("button", "action subtle", "Archive");
    archive.type = "button";
    archive.dataset.testid = "archive";
    archive.dataset.action = "archive";
    actions.append(toggle, archive);
    const foot = el("div", "foot");
    foot.append(meta, actions);
    main.append(title, body, foot);
    li.append(icon, main, dot);
    return { li, icon, title, body, when, cat, dot, toggle };
  }
  updateRow(r, n, now) {
    const unread = !n.read_at;
    r.li.classList.toggle("unread", unread);
    r.li.dataset.unread = String(unread);
    r.li.classList.toggle("linked", !!safeUrl(n.action_url));
    const category = typeof n.category === "string" ? n.category : "";
    const initial = category[0] || "\u2022";
    if (r.icon.textContent !== initial) {
      r.icon.textContent = initial;
      r.icon.style.setProperty("--hue", String(hue(category)));
    }
    const title = String(n.title || "");
    if (r.title.textContent !== title)
      r.title.textContent = title;
    const body = n.body == null ? "" : String(n.body);
    if (r.body.textContent !== body)
      r.body.textContent = body;
    r.body.hidden = !body;
    r.when.dateTime = n.created_at || "";
    r.when.title = n.created_at ? new Date(n.created_at).toLocaleString() : "";
    r.when.textContent = relativeTime(n.created_at, now);
    r.cat.textContent = category;
    r.dot.setAttribute("aria-label", unread ? "Unread" : "Read");
    r.li.setAttribute("aria-label", `${unread ? "Unread: " : ""}${title}`);
    const wanted = unread ? "read" : "unread";
    if (r.toggle.dataset.action !== wanted) {
      r.toggle.dataset.action = wanted;
      r.toggle.dataset.testid = unread ? "mark-read" : "mark-unread";
      r.toggle.className = unread ? "action primary" : "action subtle";
      r.toggle.textContent = unread ? "Mark read" : "Mark unread";
    }
  }
};
function defineHeraldBell(name = "herald-bell") {
  if (typeof customElements !== "undefined" && !customElements.get(name))
    customElements.define(name, HeraldBell);
}
defineHeraldBell();
export {
  HeraldBell,
  HeraldClient,
  HeraldError,
  HeraldStream,
  INBOX_EVENTS,
  Inbox,
  compareNotifications,
  defineHeraldBell
};
