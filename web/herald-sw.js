/* @herald/client 0.1.0 — herald-sw.js, Herald's Web Push service worker (push → system notification and app badge; notificationclick → focus or open). Serve it from your app's origin, or importScripts() it from your own service worker; options: ?icon=&badge=&url=. Built from clients/js by `npm run build`; do not edit. */
(() => {
  // dist/sw.js
  function safeHttpUrl(raw, base) {
    if (typeof raw !== "string" || !raw)
      return null;
    try {
      const u = base ? new URL(raw, base) : new URL(raw);
      return u.protocol === "http:" || u.protocol === "https:" ? u.href : null;
    } catch {
      return null;
    }
  }
  function workerOptions(scriptUrl) {
    const opts = {};
    let q;
    try {
      q = new URL(scriptUrl).searchParams;
    } catch {
      return opts;
    }
    for (const key of ["icon", "badge", "url"]) {
      const v = safeHttpUrl(q.get(key), scriptUrl);
      if (v)
        opts[key] = v;
    }
    return opts;
  }
  function parsePayload(data) {
    if (!data)
      return null;
    let value;
    try {
      value = "json" in data ? data.json() : JSON.parse(data.text());
    } catch {
      return null;
    }
    const p = value;
    if (!p || typeof p !== "object" || typeof p.title !== "string" || !p.title)
      return null;
    return {
      id: typeof p.id === "string" ? p.id : "",
      title: p.title,
      body: typeof p.body === "string" ? p.body : null,
      action_url: typeof p.action_url === "string" ? p.action_url : null,
      category: typeof p.category === "string" ? p.category : null,
      unread: typeof p.unread === "number" && Number.isFinite(p.unread) && p.unread >= 0 ? Math.floor(p.unread) : null
    };
  }
  async function handlePush(payload, deps) {
    const { registration, badge, options = {} } = deps;
    const fallback = options.url || registration.scope;
    if (!payload) {
      await registration.showNotification("New notification", { data: { herald: true, id: null, action_url: null, category: null, url: fallback } });
      return;
    }
    const data = {
      herald: true,
      id: payload.id || null,
      action_url: safeHttpUrl(payload.action_url),
      category: payload.category ?? null,
      url: fallback
    };
    const shown = { data };
    if (payload.body)
      shown.body = payload.body;
    if (payload.id)
      shown.tag = payload.id;
    if (options.icon)
      shown.icon = options.icon;
    if (options.badge)
      shown.badge = options.badge;
    await registration.showNotification(payload.title, shown);
    if (payload.unread != null)
      await setBadge(badge, payload.unread);
  }
  async function setBadge(badge, unread) {
    try {
      if (unread > 0 && badge?.setAppBadge)
        await badge.setAppBadge(unread);
      else if (unread <= 0 && badge?.clearAppBadge)
        await badge.clearAppBadge();
    } catch {
    }
  }
  function sameUrl(a, b) {
    try {
      const x = new URL(a);
      const y = new URL(b);
      x.hash = "";
      y.hash = "";
      return x.href === y.href;
    } catch {
      return false;
    }
  }
  async function handleNotificationClick(notification, deps) {
    notification.close();
    const raw = notification.data ?? {};
    const target = safeHttpUrl(raw.action_url);
    const home = safeHttpUrl(raw.url) || deps.scope;
    const message = { type: "herald.notificationclick", id: typeof raw.id === "string" ? raw.id : null, action_url: target };
    const windows = await deps.clients.matchAll({ type: "window", includeUncontrolled: true });
    const tell = (c) => {
      try {
        c?.postMessage(message);
      } catch {
      }
      return c;
    };
    if (target) {
      const there = windows.find((c) => sameUrl(c.url, target));
      if (there)
        return tell(await there.focus());
      return tell(await deps.clients.openWindow(target));
    }
    const inScope = windows.filter((c) => c.url.startsWith(deps.scope));
    const pick = (list) => list.find((c) => c.focused) || list.find((c) => c.visibilityState === "visible") || list[0];
    const best = pick(inScope) || pick(windows);
    if (best)
      return tell(await best.focus());
    return tell(await deps.clients.openWindow(home));
  }
  function installHeraldServiceWorker(scope) {
    const options = workerOptions(scope.location.href);
    scope.addEventListener("push", (event) => {
      event.waitUntil(handlePush(parsePayload(event.data), { registration: scope.registration, badge: scope.navigator, options }));
    });
    scope.addEventListener("notificationclick", (event) => {
      if (!isHeralds(event.notification))
        return;
      event.waitUntil(handleNotificationClick(event.notification, { clients: scope.clients, scope: scope.registration.scope }));
    });
    scope.addEventListener("pushsubscriptionchange", (event) => {
      const key = event.oldSubscription?.options?.applicationServerKey;
      const manager = scope.registration.pushManager;
      if (!key || !manager)
        return;
      event.waitUntil(manager.subscribe({ userVisibleOnly: true, applicationServerKey: key }).catch(() => void 0));
    });
  }
  function isHeralds(notification) {
    const d = notification.data;
    return !!d && typeof d === "object" && d.herald === true;
  }

  // dist/herald-sw-entry.js
  installHeraldServiceWorker(self);
})();
