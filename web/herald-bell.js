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
  /**
   * `POST /v1/me/notifications/{id}/snooze`: out of every list (but `status=snoozed`)
   * and the counts until `until`, when it comes back unread at the top. `until` must
   * be in the future and at most 30 days ahead (else a 422 `HeraldError`).
   */
  snooze(id, until) {
    return this.request("post", "/v1/me/notifications/{id}/snooze", {
      path: { id },
      body: { until: typeof until === "string" ? until : until.toISOString() }
    });
  }
  /** `POST /v1/me/notifications/{id}/unsnooze`: back now, unread at the top. */
  unsnooze(id) {
    return this.request("post", "/v1/me/notifications/{id}/unsnooze", { path: { id } });
  }
  /** `POST /v1/me/notifications/read-all`: the new counts. */
  readAll() {
    return this.request("post", "/v1/me/notifications/read-all");
  }
  /** `POST /v1/me/notifications/seen`: the new counts. */
  seen() {
    return this.request("post", "/v1/me/notifications/seen");
  }
  // ------------------------------------------------------------- preferences
  /** `GET /v1/me/preferences`: every category with defaults or a choice of the user's, with what reaches them. */
  preferences() {
    return this.request("get", "/v1/me/preferences");
  }
  /**
   * `PUT /v1/me/preferences`: changes the listed categories only (a channel
   * `null` or left out follows the category's default again). Resolves with
   * every category after the change; a required category muted is a 422
   * `HeraldError` naming `categories.{category}`, and nothing is changed.
   */
  updatePreferences(change) {
    return this.request("put", "/v1/me/preferences", { body: change });
  }
  // ------------------------------------------------------------- Web Push
  /** `GET /v1/push/vapid-public-key`: the `applicationServerKey` for `pushManager.subscribe` (404 when the server has no Web Push). */
  vapidPublicKey() {
    return this.request("get", "/v1/push/vapid-public-key");
  }
  /** `GET /v1/me/push-subscriptions`: the user's subscribed browsers, oldest first. */
  listPushSubscriptions() {
    return this.request("get", "/v1/me/push-subscriptions");
  }
  /** `POST /v1/me/push-subscriptions` with exactly `PushSubscription.toJSON()`. */
  addPushSubscription(subscription) {
    return this.request("post", "/v1/me/push-subscriptions", { body: subscription });
  }
  /** `DELETE /v1/me/push-subscriptions`: forgets one endpoint of the user's (idempotent). */
  async removePushSubscription(endpoint) {
    await this.request("delete", "/v1/me/push-subscriptions", { body: { endpoint } });
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
.title { margin: 0; font-size: 15px; font-weight: 650; display: flex; align-items: center; gap: 8px; white-space: nowrap; }
.count { font-size: 12px; font-weight: 600; color: var(--_accent); background: var(--_accent-soft); border-radius: 999px; padding: 1px 8px; white-space: nowrap; }
.count:empty { display: none; }
.link { border: 0; background: none; white-space: nowrap; padding: 4px 6px; border-radius: 6px; color: var(--_accent); font-size: 13px; font-weight: 550; cursor: pointer; }
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
  background: hsl(var(--hue) 90% 96%); color: hsl(var(--hue) 60% 48%); position: relative;
}
.stack {
  position: absolute; right: -6px; bottom: -6px; min-width: 14px; height: 14px; padding: 0 3px;
  border-radius: 8px; border: 2px solid var(--_surface); background: hsl(var(--hue) 60% 48%); color: #fff;
  font-size: 10px; font-weight: 700; line-height: 14px; text-align: center; font-variant-numeric: tabular-nums;
  box-sizing: content-box;
}
.stack[hidden] { display: none; }
.main { min-width: 0; }
.item-title { font-weight: 500; color: var(--_muted); overflow-wrap: anywhere; }
.item.unread .item-title { font-weight: 650; color: var(--_text); }
.who { font-weight: 650; color: var(--_text); }
.by { font-size: 12.5px; color: var(--_muted); }
.by[hidden] { display: none; }
.body {
  margin-top: 2px; color: var(--_muted); font-size: 13px; overflow-wrap: anywhere;
  display: -webkit-box; -webkit-line-clamp: 2; -webkit-box-orient: vertical; overflow: hidden;
}
.body[hidden] { display: none; }
.foot { margin-top: 4px; display: flex; align-items: center; justify-content: space-between; gap: 6px; min-height: 24px; }
.meta { font-size: 12px; color: var(--_muted); display: flex; gap: 6px; align-items: center; white-space: nowrap; min-width: 0; overflow: hidden; }
.cat { text-transform: capitalize; }
.dot { width: 8px; height: 8px; margin-top: 7px; border-radius: 50%; background: var(--_accent); }
.item:not(.unread) .dot { visibility: hidden; }
.actions { display: flex; gap: 2px; margin-right: -6px; }
.action {
  border: 0; background: none; cursor: pointer; font-size: 12px; font-weight: 550; color: var(--_muted);
  padding: 3px 5px; border-radius: 6px; white-space: nowrap;
}
.action:hover { background: var(--_hover); color: var(--_text); }
.action.primary { color: var(--_accent); }
.icon-action { display: grid; place-items: center; padding: 3px 5px; }
.action[aria-expanded="true"] { opacity: 1; background: var(--_hover); color: var(--_text); }
.action.subtle { opacity: 0; transition: opacity .1s; }
.item:hover .action.subtle, .item:focus-within .action.subtle, .item:focus .action.subtle { opacity: 1; }
.menu {
  position: absolute; z-index: 2; min-width: 230px; padding: 4px;
  background: var(--_surface); border: 1px solid var(--_border); border-radius: 10px;
  box-shadow: 0 10px 24px -6px rgba(16, 24, 40, .2);
}
.menu[hidden] { display: none; }
.menu-item {
  display: flex; justify-content: space-between; gap: 16px; width: 100%; padding: 6px 10px; border: 0; border-radius: 6px;
  background: none; color: var(--_text); font-size: 13px; text-align: left; cursor: pointer; white-space: nowrap;
}
.menu-item:hover { background: var(--_hover); }
.menu-item:focus-visible { outline: 2px solid var(--_accent); outline-offset: -2px; background: var(--_accent-soft); }
.menu-when { color: var(--_muted); font-size: 12px; }
.snoozed { max-height: min(440px, calc(100vh - 160px)); overflow-y: auto; overscroll-behavior: contain; }
.snoozed[hidden] { display: none; }
.snoozed .alert { margin: 8px 16px; }
.snoozed-item { display: flex; align-items: center; justify-content: space-between; gap: 12px; padding: 10px 16px; border-bottom: 1px solid var(--_border); }
.snoozed-item:last-child { border-bottom: 0; }
.snoozed-item .item-title { color: var(--_text); }
.snoozed-when { display: block; font-size: 12px; color: var(--_muted); }
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

/* The header's settings button and the settings view. */
.head-actions { display: flex; align-items: center; gap: 2px; }
.head-start { display: flex; align-items: center; gap: 4px; min-width: 0; }
.icon-btn {
  width: 30px; height: 30px; display: grid; place-items: center; border: 0; border-radius: 8px;
  background: none; color: var(--_muted); cursor: pointer; padding: 0;
}
.icon-btn:hover { background: var(--_hover); color: var(--_text); }
.icon-btn:focus-visible, .switch:focus-visible { outline: 2px solid var(--_accent); outline-offset: 2px; }
.icon-btn[hidden], .title[hidden], .link[hidden] { display: none; }
.settings { max-height: min(480px, calc(100vh - 160px)); overflow-y: auto; overscroll-behavior: contain; }
.settings[hidden], .scroll[hidden] { display: none; }
.group { padding: 14px 16px; border-bottom: 1px solid var(--_border); }
.group:last-child { border-bottom: 0; }
.group[hidden] { display: none; }
.group-title { margin: 0 0 8px; font-size: 12px; font-weight: 650; letter-spacing: .04em; text-transform: uppercase; color: var(--_muted); }
.setting { display: flex; align-items: center; justify-content: space-between; gap: 16px; }
.setting-text { display: flex; flex-direction: column; min-width: 0; }
.setting-title { font-weight: 600; }
.setting-hint { font-size: 12.5px; color: var(--_muted); }
.setting-hint.pad { margin: 4px 0 0; }
.setting-hint[hidden] { display: none; }
.switch {
  --_off: var(--herald-switch-off, var(--_border));
  position: relative; flex: none; width: 36px; height: 20px; padding: 0; border: 0; border-radius: 999px;
  background: var(--_off); cursor: pointer; transition: background .15s;
}
.switch .knob {
  position: absolute; top: 2px; left: 2px; width: 16px; height: 16px; border-radius: 50%;
  background: #fff; box-shadow: 0 1px 2px rgba(16, 24, 40, .25); transition: transform .15s;
}
.switch[aria-checked="true"] { background: var(--_accent); }
.switch[aria-checked="true"] .knob { transform: translateX(16px); }
.switch[aria-disabled="true"], .switch:disabled { opacity: .5; cursor: not-allowed; }
.switch[aria-busy="true"] { opacity: .7; cursor: progress; }
.prefs { width: 100%; border-collapse: collapse; }
.prefs[hidden] { display: none; }
.prefs th, .prefs td { padding: 7px 0; text-align: center; border-bottom: 1px solid var(--_border); }
.prefs tr:last-child th, .prefs tr:last-child td { border-bottom: 0; }
.prefs thead th { font-size: 12px; font-weight: 600; color: var(--_muted); padding-top: 0; }
.prefs th:first-child { text-align: left; font-weight: 500; }
.prefs thead th:first-child { font-weight: 600; }
.prefs th[hidden], .prefs td[hidden] { display: none; }
.prefs td, .prefs thead th:not(:first-child) { width: 72px; }
.cat-name { overflow-wrap: anywhere; }
.lock {
  display: inline-flex; align-items: center; gap: 3px; margin-left: 8px; padding: 0 6px; border-radius: 999px;
  font-size: 11px; font-weight: 600; color: var(--_muted); background: var(--_hover); vertical-align: 1px;
}
.lock[hidden] { display: none; }
.alert {
  margin: 8px 0; padding: 8px 10px; border-radius: 8px; font-size: 12.5px;
  color: var(--_badge-bg); background: color-mix(in srgb, var(--_badge-bg) 8%, var(--_surface));
}
.alert[hidden] { display: none; }
@media (prefers-reduced-motion: reduce) { .bell.ring svg, .item.fresh, .dropdown { animation: none; } .switch, .switch .knob { transition: none; } }
`;

// dist/bell-settings.js
var LOCK_ICON = '<svg viewBox="0 0 24 24" width="12" height="12" aria-hidden="true"><rect x="5" y="11" width="14" height="10" rx="2" fill="none" stroke="currentColor" stroke-width="2"/><path d="M8 11V8a4 4 0 0 1 8 0v3" fill="none" stroke="currentColor" stroke-width="2"/></svg>';
function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className)
    node.className = className;
  if (text !== void 0)
    node.textContent = text;
  return node;
}
function makeSwitch(testid) {
  const b = el("button", "switch");
  b.type = "button";
  b.setAttribute("role", "switch");
  b.setAttribute("aria-checked", "false");
  b.dataset.testid = testid;
  b.part.add("switch");
  b.append(el("span", "knob"));
  return b;
}
function categoryLabel(name) {
  const words = name.replace(/[._-]+/g, " ").trim();
  return words ? words.charAt(0).toUpperCase() + words.slice(1) : name;
}
var CHANNEL_NAMES = { in_app: "in app", web_push: "desktop" };
var SettingsPanel = class {
  constructor() {
    this.prefs = null;
    this.push = null;
    this.pushState = null;
    this.pushBusy = false;
    this.pushGen = 0;
    this.unsub = null;
    this.rows = /* @__PURE__ */ new Map();
    this.labels = categoryLabel;
    const root = el("div", "settings");
    root.dataset.testid = "settings";
    root.part.add("settings");
    root.hidden = true;
    const pushGroup = el("section", "group");
    pushGroup.dataset.testid = "push-section";
    pushGroup.hidden = true;
    const pushRow = el("div", "setting");
    const pushText = el("div", "setting-text");
    const pushTitle = el("span", "setting-title", "Enable desktop notifications");
    pushTitle.id = "herald-push-title";
    const pushHint = el("span", "setting-hint");
    pushHint.id = "herald-push-hint";
    pushHint.dataset.testid = "push-hint";
    pushText.append(pushTitle, pushHint);
    const pushSwitch = makeSwitch("push-switch");
    pushSwitch.setAttribute("aria-labelledby", pushTitle.id);
    pushSwitch.setAttribute("aria-describedby", pushHint.id);
    pushRow.append(pushText, pushSwitch);
    const pushError = el("div", "alert");
    pushError.dataset.testid = "push-error";
    pushError.setAttribute("role", "alert");
    pushError.hidden = true;
    pushGroup.append(pushRow, pushError);
    const prefGroup = el("section", "group");
    const heading = el("h3", "group-title", "What reaches you");
    heading.id = "herald-prefs-title";
    const table = el("table", "prefs");
    table.dataset.testid = "preferences";
    table.setAttribute("aria-labelledby", heading.id);
    const head = el("thead");
    const hr = el("tr");
    const c0 = el("th", void 0, "Category");
    const c1 = el("th", void 0, "In app");
    const c2 = el("th", void 0, "Desktop");
    for (const c of [c0, c1, c2])
      c.scope = "col";
    c2.title = "Pushed to your browsers and devices when the app is closed";
    hr.append(c0, c1, c2);
    head.append(hr);
    const body = el("tbody");
    table.append(head, body);
    const empty = el("p", "setting-hint pad", "No categories to choose from yet.");
    empty.dataset.testid = "preferences-empty";
    empty.hidden = true;
    const loading = el("div", "note");
    loading.append(el("span", "spinner"), document.createTextNode("Loading\u2026"));
    loading.hidden = true;
    const error = el("div", "alert");
    error.dataset.testid = "preferences-error";
    error.setAttribute("role", "alert");
    error.hidden = true;
    prefGroup.append(heading, error, table, empty, loading);
    root.append(pushGroup, prefGroup);
    this.root = root;
    this.ui = { pushGroup, pushSwitch, pushHint, pushError, table, pushCol: c2, body, empty, loading, error };
    pushSwitch.addEventListener("click", () => void this.togglePush());
    body.addEventListener("click", (e) => {
      const b = e.target.closest('button[role="switch"]');
      if (b)
        this.onCategorySwitch(b);
    });
  }
  /** The stores to show (null: none yet). */
  attach(prefs, push) {
    this.unsub?.();
    this.unsub = null;
    this.prefs = prefs;
    this.push = push;
    this.pushState = null;
    this.pushGen++;
    for (const r of this.rows.values())
      r.tr.remove();
    this.rows.clear();
    if (prefs) {
      this.unsub = prefs.onChange((change) => {
        if (change.refused)
          this.showError(`Couldn't change \u201C${this.labels(change.refused.category)}\u201D: ${change.refused.message}`);
        this.render();
      });
    }
    this.render();
  }
  set categoryLabels(fn) {
    this.labels = fn;
    for (const r of this.rows.values())
      r.tr.remove();
    this.rows.clear();
    this.render();
  }
  get visible() {
    return !this.root.hidden;
  }
  /** Shows the view, fetching the current state. */
  show() {
    this.root.hidden = false;
    this.ui.error.hidden = true;
    this.ui.pushError.hidden = true;
    void this.prefs?.refresh();
    void this.readPush();
    this.render();
  }
  hide() {
    this.root.hidden = true;
  }
  /** The first control, for focus when the view opens. */
  firstControl() {
    const controls = Array.from(this.root.querySelectorAll('button[role="switch"]'));
    return controls.find((b) => !b.disabled && !b.closest("[hidden]")) ?? null;
  }
  // ------------------------------------------------------------- Web Push
  async readPush() {
    const push = this.push;
    const gen = ++this.pushGen;
    if (!push) {
      this.pushState = null;
      this.renderPush();
      return;
    }
    let state;
    try {
      state = await push.state();
    } catch {
      state = { status: "off" };
    }
    if (gen !== this.pushGen || this.pushBusy)
      return;
    this.pushState = state;
    this.renderPush();
  }
  async togglePush() {
    const push = this.push;
    const s = this.pushState?.status;
    if (!push || this.pushBusy || s !== "on" && s !== "off")
      return;
    this.pushBusy = true;
    this.pushGen++;
    this.ui.pushError.hidden = true;
    this.renderPush(s === "on" ? "Turning off\u2026" : "Asking your browser\u2026");
    try {
      this.pushState = s === "on" ? await push.disable() : await push.enable();
    } catch (err) {
      this.ui.pushError.textContent = err instanceof Error ? err.message : String(err);
      this.ui.pushError.hidden = false;
      this.pushBusy = false;
      await this.readPush();
      return;
    }
    this.pushBusy = false;
    this.renderPush();
  }
  renderPush(busyText) {
    const { pushGroup, pushSwitch, pushHint, pushCol } = this.ui;
    const state = this.pushState;
    pushGroup.hidden = !this.push;
    const serverHasPush = !state || state.status !== "unavailable";
    pushCol.hidden = !serverHasPush;
    for (const r of this.rows.values())
      r.switches.web_push.parentElement.hidden = !serverHasPush;
    if (!this.push)
      return;
    const status = state?.status ?? null;
    pushGroup.dataset.status = this.pushBusy ? "busy" : status ?? "loading";
    pushSwitch.setAttribute("aria-checked", String(status === "on"));
    const usable = !this.pushBusy && (status === "on" || status === "off");
    pushSwitch.setAttribute("aria-disabled", String(!usable));
    pushSwitch.setAttribute("aria-busy", String(this.pushBusy));
    pushSwitch.disabled = !(status === "on" || status === "off") && !this.pushBusy;
    pushHint.textContent = busyText ?? (status === "on" ? "On for this browser: you'll be notified even when this tab is closed." : status === "off" ? "Get a system notification when this tab is closed." : status === null ? "Checking this browser\u2026" : state?.reason ?? "");
  }
  // ------------------------------------------------------------- categories
  onCategorySwitch(b) {
    const prefs = this.prefs;
    const category = b.dataset.category;
    const channel = b.dataset.channel;
    if (!prefs || !category || !channel)
      return;
    const c = prefs.categories.get(category);
    if (!c)
      return;
    if (c.required) {
      this.showError(`\u201C${this.labels(category)}\u201D is required: it can't be turned off.`);
      return;
    }
    if (prefs.pending.has(`${category}/${channel}`))
      return;
    this.ui.error.hidden = true;
    prefs.set(category, channel, !c[channel]).catch(() => {
    });
  }
  showError(text) {
    this.ui.error.textContent = text;
    this.ui.error.hidden = false;
  }
  createRow(name) {
    const tr = el("tr");
    tr.dataset.testid = "category";
    tr.dataset.category = name;
    const th = el("th");
    th.scope = "row";
    const label = el("span", "cat-name", this.labels(name));
    label.dataset.testid = "category-name";
    const lock = el("span", "lock");
    lock.dataset.testid = "required";
    lock.innerHTML = LOCK_ICON;
    lock.append(document.createTextNode("Required"));
    lock.hidden = true;
    th.append(label, lock);
    tr.append(th);
    const switches = {};
    for (const channel of ["in_app", "web_push"]) {
      const td = el("td");
      const s = makeSwitch(channel);
      s.dataset.category = name;
      s.dataset.channel = channel;
      s.setAttribute("aria-label", `${this.labels(name)}: ${CHANNEL_NAMES[channel]}`);
      td.append(s);
      tr.append(td);
      switches[channel] = s;
    }
    return { tr, name: label, lock, switches };
  }
  updateRow(row, name, c, pending) {
    row.tr.classList.toggle("required", c.required);
    row.tr.dataset.required = String(c.required);
    row.lock.hidden = !c.required;
    for (const channel of ["in_app", "web_push"]) {
      const s = row.switches[channel];
      const busy = pending.has(`${name}/${channel}`);
      s.setAttribute("aria-checked", String(c[channel]));
      s.setAttribute("aria-disabled", String(c.required));
      s.setAttribute("aria-busy", String(busy));
      s.title = c.required ? "Required by the service: it cannot be turned off" : "";
    }
  }
  render() {
    this.renderPush();
    const prefs = this.prefs;
    const { body, empty, loading, table } = this.ui;
    if (!prefs) {
      table.hidden = true;
      loading.hidden = false;
      return;
    }
    const list = prefs.list();
    const keep = /* @__PURE__ */ new Set();
    let prev = null;
    for (const [name, c] of list) {
      keep.add(name);
      let row = this.rows.get(name);
      if (!row) {
        row = this.createRow(name);
        this.rows.set(name, row);
      }
      this.updateRow(row, name, c, prefs.pending);
      const wanted = prev ? prev.nextSibling : body.firstChild;
      if (wanted !== row.tr)
        body.insertBefore(row.tr, wanted);
      prev = row.tr;
    }
    for (const [name, row] of this.rows) {
      if (!keep.has(name)) {
        row.tr.remove();
        this.rows.delete(name);
      }
    }
    const serverHasPush = !this.pushState || this.pushState.status !== "unavailable";
    for (const r of this.rows.values())
      r.switches.web_push.parentElement.hidden = !serverHasPush;
    loading.hidden = prefs.loaded || !!prefs.error;
    table.hidden = !prefs.loaded || list.length === 0;
    empty.hidden = !(prefs.loaded && list.length === 0);
    if (prefs.error && this.ui.error.hidden)
      this.showError(prefs.error);
  }
};

// dist/group.js
var ACTORS_KEPT = 5;
function actorPhrase(actors, groupCount) {
  const newest = actors[0];
  if (!newest)
    return null;
  const people = actors.length < ACTORS_KEPT ? actors.length : Math.max(actors.length, groupCount);
  if (people === 1)
    return newest;
  if (people === 2)
    return `${newest} and ${actors[1]}`;
  return `${newest} and ${people - 1} others`;
}
function entryText(n) {
  const title = String(n.title || "");
  const actors = n.actors ?? [];
  const phrase = actorPhrase(actors, n.group_count ?? 1);
  const newest = actors[0] ?? "";
  if (!phrase)
    return { lead: null, rest: title, by: null };
  const after = title.slice(newest.length);
  if (title.startsWith(newest) && !/^[\p{L}\p{N}]/u.test(after))
    return { lead: phrase, rest: after, by: null };
  return { lead: null, rest: title, by: phrase };
}
function entrySummary(n) {
  const t = entryText(n);
  return (t.lead ?? "") + t.rest + (t.by ? ` (${t.by})` : "");
}

// dist/bell-snooze.js
function dayAt(now, days, hour) {
  const d = new Date(now);
  d.setDate(d.getDate() + days);
  d.setHours(hour, 0, 0, 0);
  return d;
}
var DEFAULT_SNOOZE_OPTIONS = [
  { label: "For 1 hour", until: (now) => new Date(now.getTime() + 36e5) },
  { label: "Until tomorrow", until: (now) => dayAt(now, 1, 9) },
  { label: "Until next week", until: (now) => dayAt(now, (8 - now.getDay()) % 7 || 7, 9) }
];
function snoozeTime(when) {
  const d = typeof when === "string" ? new Date(when) : when;
  return d.toLocaleString(void 0, { weekday: "short", hour: "numeric", minute: "2-digit" });
}
function el2(tag, className, text) {
  const node = document.createElement(tag);
  if (className)
    node.className = className;
  if (text !== void 0)
    node.textContent = text;
  return node;
}
var SnoozeMenu = class {
  constructor() {
    this.options = DEFAULT_SNOOZE_OPTIONS;
    this.anchor = null;
    this.pick = null;
    const root = el2("div", "menu");
    root.dataset.testid = "snooze-menu";
    root.part.add("snooze-menu");
    root.setAttribute("role", "menu");
    root.setAttribute("aria-label", "Snooze until");
    root.hidden = true;
    this.root = root;
    root.addEventListener("click", (e) => {
      const item = e.target.closest("button[data-option]");
      const option = item ? this.options[Number(item.dataset.option)] : void 0;
      const pick = this.pick;
      if (!option || !pick)
        return;
      this.close();
      pick(option.until(/* @__PURE__ */ new Date()));
    });
    root.addEventListener("keydown", (e) => this.onKey(e));
    root.addEventListener("focusout", (e) => {
      const to = e.relatedTarget;
      if (!(to && (root.contains(to) || to === this.anchor)))
        this.close();
    });
  }
  /** Opens at `anchor` (a row's Snooze button), or closes if open there; `pick` gets the time chosen. */
  toggle(anchor, pick) {
    const same = this.anchor === anchor;
    this.close();
    if (same)
      return;
    const now = /* @__PURE__ */ new Date();
    const items = this.options.map((o, i) => {
      const b = el2("button", "menu-item");
      b.type = "button";
      b.tabIndex = -1;
      b.setAttribute("role", "menuitem");
      b.dataset.option = String(i);
      b.dataset.testid = "snooze-option";
      b.append(el2("span", void 0, o.label), el2("span", "menu-when", snoozeTime(o.until(now))));
      return b;
    });
    this.root.replaceChildren(...items);
    this.anchor = anchor;
    this.pick = pick;
    anchor.setAttribute("aria-expanded", "true");
    this.root.hidden = false;
    this.place();
    items[0]?.focus({ preventScroll: true });
  }
  /**
   * Puts the open menu under its button, or above it when the dropdown (its
   * positioned parent) would cut it off below; closes it when the button is gone.
   */
  place() {
    const anchor = this.anchor;
    if (!anchor)
      return;
    const box = this.root.offsetParent;
    if (!anchor.isConnected || !box) {
      this.close();
      return;
    }
    const a = anchor.getBoundingClientRect();
    const b = box.getBoundingClientRect();
    const h = this.root.offsetHeight;
    const below = a.bottom + 4 + h <= b.bottom || a.top - 4 - h < b.top;
    this.root.style.top = `${(below ? a.bottom + 4 : a.top - 4 - h) - b.top}px`;
    this.root.style.right = `${b.right - a.right}px`;
  }
  close() {
    const anchor = this.anchor;
    this.anchor = null;
    this.pick = null;
    this.root.hidden = true;
    anchor?.setAttribute("aria-expanded", "false");
  }
  onKey(e) {
    e.stopPropagation();
    const items = Array.from(this.root.querySelectorAll("button[data-option]"));
    const i = items.indexOf(e.target);
    const moves = { ArrowDown: i + 1, ArrowUp: i - 1, Home: 0, End: items.length - 1 };
    if (e.key in moves) {
      e.preventDefault();
      const n = items.length;
      items[(moves[e.key] + n) % n]?.focus();
    } else if (e.key === "Escape" || e.key === "Tab") {
      if (e.key === "Escape")
        e.preventDefault();
      const anchor = this.anchor;
      this.close();
      anchor?.focus();
    }
  }
};
var SnoozedPanel = class {
  constructor() {
    this.inbox = null;
    const root = el2("div", "snoozed");
    root.dataset.testid = "snoozed";
    root.part.add("snoozed");
    root.hidden = true;
    const list = el2("ul", "items");
    list.setAttribute("aria-label", "Snoozed notifications, the soonest back first");
    const empty = el2("div", "empty");
    empty.dataset.testid = "snoozed-empty";
    empty.append(el2("p", "empty-title", "Nothing snoozed"), el2("p", "empty-text", "Snooze a notification to have it come back later."));
    const loading = el2("div", "note");
    loading.append(el2("span", "spinner"), document.createTextNode("Loading\u2026"));
    const error = el2("div", "alert");
    error.setAttribute("role", "alert");
    const more = el2("button", "link", "Show more");
    more.type = "button";
    const moreRow = el2("div", "note");
    moreRow.append(more);
    root.append(error, list, empty, loading, moreRow);
    this.root = root;
    this.ui = { list, empty, loading, error, more, moreRow };
    more.addEventListener("click", () => void this.inbox?.loadSnoozed(true));
    list.addEventListener("click", (e) => {
      const b = e.target.closest("button[data-id]");
      if (b)
        this.unsnooze(b);
    });
  }
  attach(inbox) {
    this.inbox = inbox;
    this.render();
  }
  get visible() {
    return !this.root.hidden;
  }
  /** Shows the view, fetching the snoozed list. */
  show() {
    this.root.hidden = false;
    void this.inbox?.loadSnoozed();
    this.render();
  }
  hide() {
    this.root.hidden = true;
  }
  /** The first control, for focus when the view opens. */
  firstControl() {
    return this.ui.list.querySelector("button");
  }
  /** Brings one back; focus goes to the next one's button, or the view. */
  unsnooze(b) {
    const inbox = this.inbox;
    if (!inbox)
      return;
    const buttons = Array.from(this.ui.list.querySelectorAll("button"));
    const i = buttons.indexOf(b);
    void inbox.unsnooze(b.dataset.id).catch(() => this.render());
    const next = Array.from(this.ui.list.querySelectorAll("button"));
    (next[Math.min(i, next.length - 1)] ?? this.ui.more).focus();
  }
  render() {
    const inbox = this.inbox;
    const { list, empty, loading, error, moreRow } = this.ui;
    const items = inbox ? inbox.listSnoozed() : [];
    const rows = items.map((n) => {
      const li = el2("li", "snoozed-item");
      li.dataset.testid = "snoozed-notification";
      li.dataset.id = n.id;
      const text = el2("div", "main");
      const title = el2("div", "item-title", entrySummary(n));
      title.dataset.testid = "title";
      const when = el2("time", "snoozed-when", n.snoozed_until ? "Back " + snoozeTime(n.snoozed_until) : "");
      when.dateTime = n.snoozed_until || "";
      text.append(title, when);
      const b = el2("button", "action primary", "Unsnooze");
      b.type = "button";
      b.dataset.id = n.id;
      b.dataset.testid = "unsnooze";
      b.setAttribute("aria-label", `Unsnooze: ${entrySummary(n)}`);
      li.append(text, b);
      return li;
    });
    const focused = list.getRootNode().activeElement;
    const focusedId = focused && list.contains(focused) ? focused.dataset.id : void 0;
    list.replaceChildren(...rows);
    if (focusedId)
      list.querySelector(`button[data-id="${CSS.escape(focusedId)}"]`)?.focus();
    const loaded = !!inbox?.snoozed;
    loading.hidden = !inbox?.loadingSnoozed;
    empty.hidden = !(loaded && items.length === 0 && !inbox?.snoozedCursor);
    moreRow.hidden = !inbox?.snoozedCursor || inbox.loadingSnoozed;
    error.textContent = inbox?.snoozedError ?? "";
    error.hidden = !inbox?.snoozedError;
  }
};

// dist/inbox.js
var INBOX_EVENTS = [
  "notification.created",
  "notification.updated",
  "notification.snoozed",
  "notification.expired",
  "inbox.read_all",
  "inbox.seen"
];
var PAGE_SIZE = 20;
var time = (iso) => {
  const t = iso ? Date.parse(iso) : NaN;
  return Number.isFinite(t) ? t : 0;
};
var latest = (n) => time(n.latest_at || n.created_at);
function compareNotifications(a, b) {
  const d = latest(b) - latest(a);
  if (d !== 0)
    return d;
  return a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
}
var listed = (n) => !n.archived_at && !n.snoozed_until;
function file(held, belongs, complete, n) {
  if (!belongs) {
    held.delete(n.id);
    return;
  }
  if (!held.has(n.id) && !complete) {
    let oldest = null;
    for (const it of held.values())
      if (!oldest || compareNotifications(it, oldest) > 0)
        oldest = it;
    if (oldest && compareNotifications(n, oldest) > 0)
      return;
  }
  held.set(n.id, n);
}
var Inbox = class {
  constructor(client, stream) {
    this.client = client;
    this.stream = stream;
    this.items = /* @__PURE__ */ new Map();
    this.snoozed = null;
    this.snoozedCursor = null;
    this.loadingSnoozed = false;
    this.snoozedError = null;
    this.counts = null;
    this.nextCursor = null;
    this.loaded = false;
    this.loadingMore = false;
    this.error = null;
    this.eventGen = 0;
    this.snoozedGen = 0;
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
      if (this.snoozed)
        void this.loadSnoozed();
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
  /** The loaded snoozed notifications, the soonest back first. */
  listSnoozed() {
    return Array.from(this.snoozed?.values() ?? []).sort((a, b) => time(a.snoozed_until) - time(b.snoozed_until) || compareNotifications(a, b));
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
  /** Files a notification's new state in `items` or `snoozed`, wherever it now belongs. */
  upsert(n) {
    if (!n || typeof n.id !== "string")
      return;
    file(this.items, listed(n), !this.loaded || this.nextCursor === null, n);
    if (this.snoozed)
      file(this.snoozed, !!n.snoozed_until && !n.archived_at, this.snoozedCursor === null, n);
  }
  onEvent(type, data, at) {
    this.eventGen++;
    const arrived = [];
    if (type === "notification.expired") {
      const n = data?.notification;
      if (n && typeof n.id === "string") {
        this.items.delete(n.id);
        this.snoozed?.delete(n.id);
      }
    } else if (type === "notification.created" || type === "notification.updated" || type === "notification.snoozed") {
      const n = data?.notification;
      const before = n ? this.items.get(n.id) : void 0;
      this.upsert(n);
      if (n && this.items.has(n.id) && !n.seen_at && !n.read_at && (!before || latest(n) > latest(before)))
        arrived.push(n.id);
    } else {
      const field = type === "inbox.read_all" ? "read_at" : "seen_at";
      const when = at || (/* @__PURE__ */ new Date()).toISOString();
      const cutoff = time(when);
      for (const [id, n] of this.items) {
        if (!n[field] && latest(n) <= cutoff)
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
          if (n && n.id && listed(n))
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
          if (!this.items.has(n.id) && listed(n))
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
  /** Snoozes a listed notification until `until`: out of the list at once, the counts exact when the event comes. */
  async snooze(id, until) {
    const n = this.items.get(id);
    if (!n)
      return;
    const gen = this.eventGen;
    this.items.delete(id);
    if (!n.read_at && this.counts)
      this.counts.unread = Math.max(0, this.counts.unread - 1);
    this.emit();
    try {
      const snoozed = await this.client.snooze(id, until);
      if (this.eventGen === gen && snoozed && snoozed.id === id) {
        this.upsert(snoozed);
        this.emit();
      }
      if (this.stream.status !== "live")
        void this.refreshCounts();
    } catch (err) {
      this.error = "Couldn't snooze that notification.";
      void this.refresh();
      throw err;
    }
  }
  /** Brings a snoozed notification back now: it returns to the top of the list, unread. */
  async unsnooze(id) {
    const gen = this.eventGen;
    this.snoozed?.delete(id);
    this.emit();
    try {
      const back = await this.client.unsnooze(id);
      if (this.eventGen === gen && back && back.id === id) {
        this.upsert(back);
        this.emit();
      }
      if (this.stream.status !== "live")
        void this.refreshCounts();
    } catch (err) {
      this.snoozedError = "Couldn't bring that notification back.";
      void this.loadSnoozed();
      throw err;
    }
  }
  /**
   * Fetches the snoozed list (`status=snoozed`): its first page again, or with
   * `more` the next one. Retried while inbox events race with it; the last call wins.
   */
  async loadSnoozed(more = false) {
    const cursor = more ? this.snoozedCursor : null;
    if (more && !cursor)
      return;
    const mine = ++this.snoozedGen;
    this.loadingSnoozed = true;
    this.emit();
    try {
      for (let attempt = 0; attempt < 5; attempt++) {
        const gen = this.eventGen;
        const page = await this.client.listNotifications({ status: "snoozed", limit: PAGE_SIZE, cursor });
        if (mine !== this.snoozedGen)
          return;
        if (this.eventGen !== gen && attempt < 4)
          continue;
        const held = more && this.snoozed ? this.snoozed : /* @__PURE__ */ new Map();
        for (const n of page.items || [])
          if (n && n.id && n.snoozed_until && !n.archived_at && !held.has(n.id))
            held.set(n.id, n);
        this.snoozed = held;
        this.snoozedCursor = page.next_cursor || null;
        this.snoozedError = null;
        return;
      }
    } catch {
      if (mine === this.snoozedGen)
        this.snoozedError = "Couldn't load the snoozed notifications.";
    } finally {
      if (mine === this.snoozedGen) {
        this.loadingSnoozed = false;
        this.emit();
      }
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

// dist/preferences.js
var PREFERENCE_EVENTS = ["preferences.updated"];
var UserPreferences = class {
  constructor(client, stream) {
    this.client = client;
    this.categories = /* @__PURE__ */ new Map();
    this.loaded = false;
    this.error = null;
    this.pending = /* @__PURE__ */ new Set();
    this.eventGen = 0;
    this.loading = null;
    this.listeners = /* @__PURE__ */ new Set();
    this.unsubscribe = [];
    this.unsubscribe.push(stream.on("preferences.updated", (env) => {
      const prefs = env.data?.preferences;
      if (!prefs || typeof prefs.categories !== "object")
        return;
      this.eventGen++;
      this.apply(prefs);
    }), stream.onResync(null, () => {
      if (this.loaded)
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
  /** The categories sorted by name: what a settings panel lists. */
  list() {
    return Array.from(this.categories.entries()).sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0);
  }
  emit(change = {}) {
    for (const fn of this.listeners) {
      try {
        fn(change);
      } catch (err) {
        console.error(err);
      }
    }
  }
  apply(prefs) {
    const next = /* @__PURE__ */ new Map();
    for (const [name, c] of Object.entries(prefs.categories || {})) {
      if (c && typeof c === "object")
        next.set(name, { in_app: !!c.in_app, web_push: !!c.web_push, required: !!c.required });
    }
    this.categories = next;
    this.loaded = true;
    this.error = null;
    this.emit();
  }
  /** `GET /v1/me/preferences`, retried while events race with it. Single-flight. */
  refresh() {
    if (this.loading)
      return this.loading;
    this.loading = (async () => {
      for (let attempt = 0; attempt < 5; attempt++) {
        const gen = this.eventGen;
        let prefs;
        try {
          prefs = await this.client.preferences();
        } catch {
          this.error = "Couldn't load your notification settings.";
          this.emit();
          return;
        }
        if (this.eventGen !== gen && attempt < 4)
          continue;
        if (this.eventGen === gen)
          this.apply(prefs);
        return;
      }
    })().finally(() => {
      this.loading = null;
    });
    return this.loading;
  }
  /**
   * Turns one channel of one category on or off (`PUT /v1/me/preferences`).
   * Shows at once; on a refusal (a required category: 422) it is undone, the
   * listeners hear `refused`, the state is fetched again, and it rejects.
   */
  async set(category, channel, on) {
    const key = `${category}/${channel}`;
    const before = this.categories.get(category);
    if (before)
      this.categories.set(category, { ...before, [channel]: on });
    this.pending.add(key);
    this.emit();
    const gen = this.eventGen;
    try {
      const prefs = await this.client.updatePreferences({ categories: { [category]: { [channel]: on } } });
      this.pending.delete(key);
      if (this.eventGen === gen)
        this.apply(prefs);
      else
        this.emit();
    } catch (err) {
      this.pending.delete(key);
      if (before && this.eventGen === gen)
        this.categories.set(category, before);
      const status = err instanceof HeraldError ? err.status : 0;
      const named = err instanceof HeraldError ? err.problem?.errors?.find((e) => e.field === `categories.${category}`) : void 0;
      const message = named ? `${named.field}: ${named.message}` : err instanceof Error ? err.message : String(err);
      this.emit({ refused: { category, channel, message, status } });
      void this.refresh();
      throw err;
    }
  }
};

// dist/push.js
var WebPushError = class extends Error {
  constructor(message, cause) {
    super(message);
    this.cause = cause;
    this.name = "WebPushError";
  }
};
function base64UrlToBytes(text) {
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
  const raw = atob(b64 + "===".slice((b64.length + 3) % 4));
  return Uint8Array.from(raw, (c) => c.charCodeAt(0));
}
function sameBytes(a, b) {
  if (!a)
    return false;
  const x = a instanceof ArrayBuffer ? new Uint8Array(a) : new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  return x.length === b.length && x.every((v, i) => v === b[i]);
}
function webPushSupported() {
  return typeof window !== "undefined" && window.isSecureContext === true && typeof navigator !== "undefined" && "serviceWorker" in navigator && typeof PushManager === "function" && typeof Notification === "function";
}
var UNSUPPORTED = "This browser can't show desktop notifications for this page.";
var UNAVAILABLE = "This server does not send desktop notifications (Web Push is not configured).";
var DENIED = "Notifications are blocked for this site. Allow them in your browser's site settings, then try again.";
function describe(err) {
  if (err instanceof HeraldError)
    return err.message;
  if (err instanceof Error && err.message)
    return err.message;
  return String(err);
}
var WebPush = class {
  constructor(options) {
    this.key = null;
    if (!options || !options.client || !options.serviceWorker)
      throw new TypeError("WebPush: client and serviceWorker are required");
    this.client = options.client;
    this.scriptUrl = options.serviceWorker;
    this.scope = options.scope;
    this.timeoutMs = options.subscribeTimeoutMs ?? 2e4;
  }
  /** The server's VAPID key, or null when it has none (404). Other failures reject, and are asked again next time. */
  vapidKey() {
    if (!this.key) {
      this.key = this.client.vapidPublicKey().then((k) => base64UrlToBytes(k.public_key), (err) => {
        if (err instanceof HeraldError && err.status === 404)
          return null;
        this.key = null;
        throw err;
      });
    }
    return this.key;
  }
  urls() {
    return {
      script: new URL(this.scriptUrl, document.baseURI).href,
      scope: this.scope ? new URL(this.scope, document.baseURI).href : void 0
    };
  }
  /** Our service worker's registration, if there is one (found by scope, checked by script URL). */
  async existingRegistration() {
    const { script, scope } = this.urls();
    const reg = await navigator.serviceWorker.getRegistration(scope ?? script);
    const worker = reg?.active || reg?.waiting || reg?.installing;
    return reg && worker && worker.scriptURL === script ? reg : null;
  }
  /**
   * Our service worker's registration, registering it when needed, once it has
   * an active worker (`pushManager.subscribe` refuses a registration without one).
   */
  async registration() {
    let reg = await this.existingRegistration();
    if (!reg) {
      const { script, scope } = this.urls();
      reg = await navigator.serviceWorker.register(script, scope ? { scope } : void 0);
    }
    if (reg.active)
      return reg;
    const worker = reg.installing || reg.waiting;
    if (!worker)
      throw new Error("it has no worker");
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("it did not activate within 10 s")), 1e4);
      const check = () => {
        if (reg?.active) {
          clearTimeout(timer);
          worker.removeEventListener("statechange", check);
          resolve();
        } else if (worker.state === "redundant") {
          clearTimeout(timer);
          worker.removeEventListener("statechange", check);
          reject(new Error("its script failed to install"));
        }
      };
      worker.addEventListener("statechange", check);
      check();
    });
    return reg;
  }
  /** What the switch should show now. */
  async state() {
    if (!webPushSupported())
      return { status: "unsupported", reason: UNSUPPORTED };
    const key = await this.vapidKey();
    if (!key)
      return { status: "unavailable", reason: UNAVAILABLE };
    if (Notification.permission === "denied")
      return { status: "denied", reason: DENIED };
    if (Notification.permission !== "granted")
      return { status: "off" };
    const reg = await this.existingRegistration();
    const sub = await reg?.pushManager.getSubscription();
    if (!sub || !sameBytes(sub.options?.applicationServerKey, key))
      return { status: "off" };
    const { subscriptions } = await this.client.listPushSubscriptions();
    return { status: subscriptions.some((s) => s.endpoint === sub.endpoint) ? "on" : "off" };
  }
  /**
   * Turns desktop notifications on for this browser: permission (call it from
   * a click), the service worker, a subscription with the server's key, and
   * `POST /v1/me/push-subscriptions`. Resolves with the new state; rejects
   * with a `WebPushError` saying what failed.
   */
  async enable() {
    if (!webPushSupported())
      throw new WebPushError(UNSUPPORTED);
    let key;
    try {
      key = await this.vapidKey();
    } catch (err) {
      throw new WebPushError(`Couldn't reach the server: ${describe(err)}`, err);
    }
    if (!key)
      throw new WebPushError(UNAVAILABLE);
    const permission = Notification.permission === "granted" ? "granted" : await Notification.requestPermission();
    if (permission === "denied")
      throw new WebPushError(DENIED);
    if (permission !== "granted")
      throw new WebPushError("Notifications were not allowed. Turn the switch on again to be asked once more.");
    let reg;
    try {
      reg = await this.registration();
    } catch (err) {
      throw new WebPushError(`The service worker (${this.scriptUrl}) could not be registered: ${describe(err)}`, err);
    }
    let sub = await reg.pushManager.getSubscription();
    if (sub && !sameBytes(sub.options?.applicationServerKey, key)) {
      await sub.unsubscribe().catch(() => false);
      sub = null;
    }
    if (!sub) {
      let timer;
      const timeout = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new WebPushError(`The browser's push service did not answer within ${Math.round(this.timeoutMs / 1e3)} s. Is this browser offline, or its push service blocked?`)), this.timeoutMs);
      });
      try {
        sub = await Promise.race([reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key }), timeout]);
      } catch (err) {
        if (err instanceof WebPushError)
          throw err;
        throw new WebPushError(`The browser refused to subscribe: ${describe(err)}`, err);
      } finally {
        clearTimeout(timer);
      }
    }
    try {
      await this.client.addPushSubscription(sub.toJSON());
    } catch (err) {
      throw new WebPushError(`The server refused this browser's subscription: ${describe(err)}`, err);
    }
    return { status: "on" };
  }
  /** Turns them off: `DELETE /v1/me/push-subscriptions` for this browser's endpoint, then unsubscribes it. */
  async disable() {
    if (!webPushSupported())
      return { status: "unsupported", reason: UNSUPPORTED };
    const reg = await this.existingRegistration();
    const sub = await reg?.pushManager.getSubscription();
    if (sub) {
      try {
        await this.client.removePushSubscription(sub.endpoint);
      } catch (err) {
        throw new WebPushError(`Couldn't turn desktop notifications off: ${describe(err)}`, err);
      }
      await sub.unsubscribe().catch(() => false);
    }
    return { status: "off" };
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
   * Records a frame's position. Events report theirs with the event itself,
   * `herald.reset` with the resync; the bare `id: <head>` frame as a position.
   */
  track(e, report = false) {
    if (!e.lastEventId)
      return;
    this.sawId = true;
    this.lastEventId = e.lastEventId;
    const seq = Number(e.lastEventId);
    if (report && Number.isSafeInteger(seq))
      this.on.position(seq);
  }
  listen(es, type) {
    es.addEventListener(type, (ev) => {
      if (es !== this.es)
        return;
      const e = ev;
      this.track(e);
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
        this.track(ev, true);
    });
    es.addEventListener("herald.reset", (ev) => {
      if (es !== this.es)
        return;
      const e = ev;
      this.track(e);
      const at = Number(e.lastEventId);
      this.on.resync("reset", streamTopics, Number.isSafeInteger(at) ? at : void 0);
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
  /**
   * `herald.reset` at `seq`: the stream starts over there, so what follows is
   * delivered even at positions this tab saw before (a rewound history reuses
   * them; dropping them as duplicates would lose them).
   */
  rewind(seq) {
    this._lastSeq = seq;
    if (this.election)
      this.election.seq = seq;
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
      resync: (reason, topics, at) => {
        this.post({ t: "resync", reason, topics, at });
        if (at !== void 0)
          this.rewind(at);
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
        if (this._role !== "follower" && !this.election)
          break;
        if (typeof msg.at === "number" && Number.isSafeInteger(msg.at))
          this.rewind(msg.at);
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
var GEAR_ICON = '<svg viewBox="0 0 24 24" width="18" height="18" aria-hidden="true"><circle cx="12" cy="12" r="3" fill="none" stroke="currentColor" stroke-width="1.8"/><path d="M19.4 15a1.7 1.7 0 0 0 .3 1.8l.1.1a2 2 0 1 1-2.8 2.8l-.1-.1a1.7 1.7 0 0 0-1.8-.3 1.7 1.7 0 0 0-1 1.5V21a2 2 0 1 1-4 0v-.1a1.7 1.7 0 0 0-1.1-1.5 1.7 1.7 0 0 0-1.8.3l-.1.1a2 2 0 1 1-2.8-2.8l.1-.1a1.7 1.7 0 0 0 .3-1.8 1.7 1.7 0 0 0-1.5-1H3a2 2 0 1 1 0-4h.1a1.7 1.7 0 0 0 1.5-1.1 1.7 1.7 0 0 0-.3-1.8l-.1-.1a2 2 0 1 1 2.8-2.8l.1.1a1.7 1.7 0 0 0 1.8.3H9a1.7 1.7 0 0 0 1-1.5V3a2 2 0 1 1 4 0v.1a1.7 1.7 0 0 0 1 1.5 1.7 1.7 0 0 0 1.8-.3l.1-.1a2 2 0 1 1 2.8 2.8l-.1.1a1.7 1.7 0 0 0-.3 1.8V9a1.7 1.7 0 0 0 1.5 1H21a2 2 0 1 1 0 4h-.1a1.7 1.7 0 0 0-1.5 1z" fill="none" stroke="currentColor" stroke-width="1.8" stroke-linecap="round" stroke-linejoin="round"/></svg>';
var BACK_ICON = '<svg viewBox="0 0 24 24" width="18" height="18" aria-hidden="true"><path d="M15 18l-6-6 6-6" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round"/></svg>';
var BELL_ICON = '<svg viewBox="0 0 24 24" width="22" height="22" aria-hidden="true"><path d="M18 8a6 6 0 1 0-12 0c0 7-3 9-3 9h18s-3-2-3-9" fill="none" stroke="currentColor" stroke-width="1.8" stroke-linecap="round" stroke-linejoin="round"/><path d="M13.73 21a2 2 0 0 1-3.46 0" fill="none" stroke="currentColor" stroke-width="1.8" stroke-linecap="round" stroke-linejoin="round"/></svg>';
var clockIcon = (size) => `<svg viewBox="0 0 24 24" width="${size}" height="${size}" aria-hidden="true"><circle cx="12" cy="12" r="8.5" fill="none" stroke="currentColor" stroke-width="1.8"/><path d="M12 7.5V12l3 2" fill="none" stroke="currentColor" stroke-width="1.8" stroke-linecap="round" stroke-linejoin="round"/></svg>`;
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
function el3(tag, className, text) {
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
    return ["api-url", "stream-url", "token", "service-worker", "service-worker-scope"];
  }
  constructor() {
    super();
    this._getToken = null;
    this._stream = null;
    this.ownsStream = false;
    this._client = null;
    this._inbox = null;
    this._preferences = null;
    this._webPush = null;
    this._categoryLabel = categoryLabel;
    this.settings = new SettingsPanel();
    this.snoozeMenu = new SnoozeMenu();
    this.snoozedPanel = new SnoozedPanel();
    this.initGen = 0;
    this.open = false;
    this.view = "list";
    this.lastUnread = null;
    this.rows = /* @__PURE__ */ new Map();
    this.fresh = /* @__PURE__ */ new Set();
    this.unsubs = [];
    this.onDocumentClick = (e) => {
      if (this.open && !e.composedPath().includes(this))
        this.closeDropdown();
    };
    this.onWorkerMessage = (e) => {
      const msg = e.data;
      if (!msg || msg.type !== "herald.notificationclick" || typeof msg.id !== "string" || !msg.id)
        return;
      const inbox = this._inbox;
      const n = inbox?.items.get(msg.id);
      if (inbox && n) {
        if (!n.read_at)
          void inbox.setState(msg.id, "read").catch(() => this.render());
      } else {
        void this._client?.markRead(msg.id).catch(() => {
        });
      }
    };
    const root = this.attachShadow({ mode: "open" });
    const style = el3("style");
    style.textContent = BELL_CSS;
    const id = "herald-dd-" + Math.random().toString(36).slice(2, 8);
    const bell = el3("button", "bell");
    bell.type = "button";
    bell.part.add("button");
    bell.dataset.testid = "bell";
    bell.setAttribute("aria-haspopup", "dialog");
    bell.setAttribute("aria-expanded", "false");
    bell.setAttribute("aria-controls", id);
    bell.setAttribute("aria-label", "Notifications");
    bell.innerHTML = BELL_ICON;
    const badge = el3("span", "badge");
    badge.part.add("badge");
    badge.dataset.testid = "badge";
    badge.hidden = true;
    badge.setAttribute("aria-hidden", "true");
    bell.append(badge);
    const dropdown = el3("section", "dropdown");
    dropdown.id = id;
    dropdown.part.add("dropdown");
    dropdown.dataset.testid = "dropdown";
    dropdown.setAttribute("role", "dialog");
    dropdown.setAttribute("aria-label", "Notifications");
    dropdown.hidden = true;
    const head = el3("header", "head");
    const start = el3("div", "head-start");
    const back = el3("button", "icon-btn");
    back.type = "button";
    back.dataset.testid = "settings-back";
    back.setAttribute("aria-label", "Back to notifications");
    back.innerHTML = BACK_ICON;
    back.hidden = true;
    const title = el3("h2", "title", "Notifications ");
    const count = el3("span", "count");
    title.append(count);
    const viewTitle = el3("h2", "title");
    viewTitle.hidden = true;
    start.append(back, title, viewTitle);
    const markAll = el3("button", "link", "Mark all read");
    markAll.type = "button";
    markAll.dataset.testid = "mark-all-read";
    const gear = el3("button", "icon-btn");
    gear.type = "button";
    gear.dataset.testid = "settings-button";
    gear.setAttribute("aria-label", "Notification settings");
    gear.title = "Notification settings";
    gear.innerHTML = GEAR_ICON;
    const snoozed = el3("button", "icon-btn");
    snoozed.type = "button";
    snoozed.dataset.testid = "snoozed-button";
    snoozed.setAttribute("aria-label", "Snoozed notifications");
    snoozed.title = "Snoozed notifications";
    snoozed.innerHTML = clockIcon(18);
    const actions = el3("div", "head-actions");
    actions.append(markAll, snoozed, gear);
    head.append(start, actions);
    const scroll = el3("div", "scroll");
    scroll.dataset.testid = "list";
    const list = el3("ul", "items");
    list.setAttribute("role", "list");
    list.setAttribute("aria-label", "Notifications, newest first");
    const empty = el3("div", "empty");
    empty.dataset.testid = "empty";
    empty.hidden = true;
    empty.append(el3("p", "empty-title", "You're all caught up"), el3("p", "empty-text", "New notifications will show up here as they happen."));
    const loading = el3("div", "note");
    loading.dataset.testid = "loading";
    loading.hidden = true;
    loading.append(el3("span", "spinner"), document.createTextNode("Loading\u2026"));
    const error = el3("div", "note error");
    error.hidden = true;
    const errorText = el3("span");
    const retry = el3("button", "link", "Retry");
    retry.type = "button";
    error.append(errorText, retry);
    scroll.append(list, empty, loading, error);
    const footer = el3("footer", "footer", "Delivered live by Herald");
    dropdown.append(head, scroll, this.snoozedPanel.root, this.settings.root, footer, this.snoozeMenu.root);
    const live = el3("div", "sr");
    live.setAttribute("aria-live", "polite");
    root.append(style, bell, dropdown, live);
    this.ui = { bell, badge, dropdown, count, title, viewTitle, markAll, snoozed, gear, back, scroll, list, empty, loading, error, errorText, live };
    bell.addEventListener("click", (e) => {
      e.stopPropagation();
      if (this.open)
        this.closeDropdown();
      else
        this.openDropdown();
    });
    markAll.addEventListener("click", () => void this._inbox?.markAllRead().catch(() => this.render()));
    gear.addEventListener("click", () => this.showSettings());
    snoozed.addEventListener("click", () => this.showSnoozed());
    back.addEventListener("click", () => this.showList());
    retry.addEventListener("click", () => {
      if (this._inbox)
        this._inbox.error = null;
      void this._inbox?.refresh();
    });
    scroll.addEventListener("scroll", () => {
      this.snoozeMenu.close();
      this.fillViewport();
    }, { passive: true });
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
  /** The user's preferences, once the bell is connected. */
  get preferences() {
    return this._preferences;
  }
  /** This browser's Web Push switch, when `service-worker` is set. */
  get webPush() {
    return this._webPush;
  }
  /** Names a category in the settings view (default: `billing.invoice` → "Billing invoice"). */
  get categoryLabel() {
    return this._categoryLabel;
  }
  set categoryLabel(fn) {
    this._categoryLabel = typeof fn === "function" ? fn : categoryLabel;
    this.settings.categoryLabels = this._categoryLabel;
  }
  /** The snooze menu's choices (default: for 1 hour, until tomorrow 9:00, until next Monday 9:00). */
  get snoozeOptions() {
    return this.snoozeMenu.options;
  }
  set snoozeOptions(options) {
    this.snoozeMenu.options = options;
  }
  /** The exact unread count, or null before it is known. */
  get unread() {
    return this._inbox?.unread ?? null;
  }
  // ------------------------------------------------------------- lifecycle
  connectedCallback() {
    document.addEventListener("click", this.onDocumentClick);
    if (typeof navigator !== "undefined" && navigator.serviceWorker)
      navigator.serviceWorker.addEventListener("message", this.onWorkerMessage);
    this.ageTimer = setInterval(() => {
      if (this.open)
        this.render();
    }, 3e4);
    this.restart();
  }
  disconnectedCallback() {
    document.removeEventListener("click", this.onDocumentClick);
    if (typeof navigator !== "undefined" && navigator.serviceWorker)
      navigator.serviceWorker.removeEventListener("message", this.onWorkerMessage);
    clearInterval(this.ageTimer);
    this.teardown();
  }
  attributeChangedCallback(name, oldValue, newValue) {
    if (oldValue === newValue)
      return;
    if (name === "service-worker" || name === "service-worker-scope") {
      this.attachSettings();
      return;
    }
    this.teardown();
    this.restart();
  }
  /** (Re)creates the Web Push switch from the `service-worker` attributes and hands the stores to the settings view. */
  attachSettings() {
    const url = this.getAttribute("service-worker");
    const client = this._client;
    this._webPush = client && url ? new WebPush({ client, serviceWorker: url, scope: this.getAttribute("service-worker-scope") || void 0 }) : null;
    this.settings.attach(this._preferences, this._webPush);
    if (this.settings.visible)
      this.settings.show();
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
    this._preferences = new UserPreferences(client, stream);
    this.attachSettings();
    this.snoozedPanel.attach(inbox);
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
    this._preferences?.dispose();
    this._preferences = null;
    this._webPush = null;
    this.settings.attach(null, null);
    this.snoozeMenu.close();
    this.snoozedPanel.attach(null);
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
    this.setView("list");
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
    this.snoozeMenu.close();
    this.ui.dropdown.hidden = true;
    this.ui.bell.setAttribute("aria-expanded", "false");
  }
  /** Shows the notifications list (the default view), the snoozed list or the settings: only the DOM. */
  setView(view) {
    const { scroll, title, viewTitle, back, snoozed, gear, markAll } = this.ui;
    this.view = view;
    const list = view === "list";
    scroll.hidden = !list;
    title.hidden = !list;
    markAll.hidden = !list;
    snoozed.hidden = !list;
    gear.hidden = !list;
    viewTitle.hidden = list;
    viewTitle.textContent = view === "snoozed" ? "Snoozed" : "Notification settings";
    back.hidden = list;
    this.snoozeMenu.close();
    if (view === "snoozed")
      this.snoozedPanel.show();
    else
      this.snoozedPanel.hide();
    if (view === "settings")
      this.settings.show();
    else
      this.settings.hide();
  }
  /** Back to the list: it is on screen again, so it is seen. */
  showList() {
    const from = this.view;
    this.setView("list");
    this.render();
    this.markSeenSoon(0);
    this.fillViewport();
    (from === "snoozed" ? this.ui.snoozed : this.ui.gear).focus();
  }
  /** The snoozed notifications, with Unsnooze. */
  showSnoozed() {
    this.setView("snoozed");
    (this.snoozedPanel.firstControl() ?? this.ui.back).focus();
  }
  /** The settings view: desktop notifications and preferences per category. */
  showSettings() {
    this.setView("settings");
    (this.settings.firstControl() ?? this.ui.back).focus();
  }
  /** True while the notifications list is on screen (what "seen" means). */
  listShown() {
    return this.open && this.view === "list";
  }
  markSeenSoon(delay) {
    clearTimeout(this.seenTimer);
    this.seenTimer = setTimeout(() => void this._inbox?.markSeen(), delay);
  }
  /** Infinite scroll: near the bottom (or nothing to scroll yet), fetch the next page. */
  fillViewport() {
    const inbox = this._inbox;
    if (!this.listShown() || !inbox || !inbox.nextCursor || inbox.loadingMore)
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
      if (this.listShown())
        this.markSeenSoon(600);
      const n = this._inbox?.items.get(arrived[arrived.length - 1]);
      if (n)
        this.ui.live.textContent = "New notification: " + entrySummary(n);
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
      if (button.dataset.action === "snooze")
        this.snoozeMenu.toggle(button, (until) => this.snooze(id, until));
      else
        void this._inbox.setState(id, button.dataset.action).catch(() => this.render());
      return;
    }
    this.activate(id);
  }
  activate(id) {
    const n = this._inbox?.items.get(id);
    if (!n || !this._inbox)
      return;
    const marked = n.read_at ? Promise.resolve() : this._inbox.setState(id, "read").catch(() => this.render());
    const link = safeUrl(n.action_url);
    const go = this.dispatchEvent(new CustomEvent("herald-select", { bubbles: true, composed: true, cancelable: true, detail: n }));
    if (!link || !go)
      return;
    void Promise.race([marked, new Promise((resolve) => setTimeout(resolve, 2e3))]).then(() => window.location.assign(link));
  }
  /** Snoozes one: it leaves the list at once, and focus goes to the entry that took its place (or the Snoozed button). */
  snooze(id, until) {
    const inbox = this._inbox;
    if (!inbox)
      return;
    const i = this.items().findIndex((li) => li.dataset.id === id);
    void inbox.snooze(id, until).catch(() => this.render());
    this.ui.live.textContent = "Snoozed until " + snoozeTime(until);
    if (this.items().length)
      this.focusItem(i);
    else
      this.ui.snoozed.focus();
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
      if (unread !== null && this._webPush)
        this.updateAppBadge(unread);
    }
    if (this.open)
      this.renderList();
    if (this.open && this.view === "snoozed")
      this.snoozedPanel.render();
  }
  /** The app badge (installed apps) follows the exact count while a tab is open; herald-sw.js sets it on each push. */
  updateAppBadge(unread) {
    const nav = navigator;
    const call = unread > 0 ? nav.setAppBadge?.(unread) : nav.clearAppBadge?.();
    call?.catch(() => {
    });
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
    this.snoozeMenu.place();
    const loading = !inbox.loaded && !inbox.error;
    this.ui.loading.hidden = !(loading || inbox.loadingMore);
    if (inbox.error)
      this.showError(inbox.error);
    else if (!this.ui.bell.title)
      this.ui.error.hidden = true;
    this.ui.empty.hidden = !(inbox.loaded && sorted.length === 0 && !inbox.nextCursor);
  }
  createRow(id) {
    const li = el3("li", "item");
    li.part.add("item");
    li.dataset.testid = "notification";
    li.dataset.id = id;
    li.tabIndex = -1;
    const icon = el3("div", "icon");
    icon.setAttribute("aria-hidden", "true");
    const initial = el3("span");
    const stack = el3("span", "stack");
    stack.dataset.testid = "group-count";
    icon.append(initial, stack);
    const main = el3("div", "main");
    const title = el3("div", "item-title");
    title.dataset.testid = "title";
    const who = el3("span", "who");
    who.dataset.testid = "actors";
    const rest = el3("span");
    title.append(who, rest);
    const by = el3("div", "by");
    by.dataset.testid = "by";
    const body = el3("div", "body");
    body.dataset.testid = "body";
    const meta = el3("div", "meta");
    const when = el3("time");
    when.dataset.testid = "time";
    const sep = el3("span", void 0, "\xB7");
    sep.setAttribute("aria-hidden", "true");
    const cat = el3("span", "cat");
    meta.append(when, sep, cat);
    const dot = el3("span", "dot");
    dot.dataset.testid = "unread-dot";
    const actions = el3("div", "actions");
    const toggle = el3("button");
    toggle.type = "button";
    const snooze = el3("button", "action subtle icon-action");
    snooze.type = "button";
    snooze.innerHTML = clockIcon(15);
    snooze.setAttribute("aria-label", "Snooze");
    snooze.title = "Snooze";
    snooze.dataset.testid = "snooze";
    snooze.dataset.action = "snooze";
    snooze.setAttribute("aria-haspopup", "menu");
    snooze.setAttribute("aria-expanded", "false");
    const archive = el3("button", "action subtle", "Archive");
    archive.type = "button";
    archive.dataset.testid = "archive";
    archive.dataset.action = "archive";
    actions.append(toggle, snooze, archive);
    const foot = el3("div", "foot");
    foot.append(meta, actions);
    main.append(title, by, body, foot);
    li.append(icon, main, dot);
    return { li, icon, initial, stack, who, rest, by, body, when, cat, dot, toggle };
  }
  updateRow(r, n, now) {
    const unread = !n.read_at;
    r.li.classList.toggle("unread", unread);
    r.li.dataset.unread = String(unread);
    r.li.classList.toggle("linked", !!safeUrl(n.action_url));
    const category = typeof n.category === "string" ? n.category : "";
    const initial = category[0] || "\u2022";
    if (r.initial.textContent !== initial) {
      r.initial.textContent = initial;
      r.icon.style.setProperty("--hue", String(hue(category)));
    }
    const count = n.group_count ?? 1;
    r.stack.textContent = count > 1 ? String(count) : "";
    r.stack.hidden = count <= 1;
    const text = entryText(n);
    if (r.who.textContent !== (text.lead ?? ""))
      r.who.textContent = text.lead ?? "";
    if (r.rest.textContent !== text.rest)
      r.rest.textContent = text.rest;
    r.by.textContent = text.by ?? "";
    r.by.hidden = !text.by;
    const body = n.body == null ? "" : String(n.body);
    if (r.body.textContent !== body)
      r.body.textContent = body;
    r.body.hidden = !body;
    const at = n.latest_at || n.created_at;
    r.when.dateTime = at || "";
    r.when.title = at ? new Date(at).toLocaleString() : "";
    r.when.textContent = relativeTime(at, now);
    r.cat.textContent = category;
    r.dot.setAttribute("aria-label", unread ? "Unread" : "Read");
    r.li.setAttribute("aria-label", `${unread ? "Unread: " : ""}${entrySummary(n)}${count > 1 ? `, ${count} notifications` : ""}`);
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
  ACTORS_KEPT,
  DEFAULT_SNOOZE_OPTIONS,
  HeraldBell,
  HeraldClient,
  HeraldError,
  HeraldStream,
  INBOX_EVENTS,
  Inbox,
  PREFERENCE_EVENTS,
  UserPreferences,
  WebPush,
  WebPushError,
  actorPhrase,
  base64UrlToBytes,
  compareNotifications,
  defineHeraldBell,
  entrySummary,
  entryText,
  webPushSupported
};
