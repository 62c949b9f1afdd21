/**
 * The service-worker side of Herald's Web Push: what a browser does with a
 * push when no tab of the app is looking.
 *
 * - `push`: the worker's payload `{id, title, body, action_url, category,
 *   unread}` becomes a system notification (`tag` = the notification's id, so a
 *   push delivered twice shows once) and the app badge shows `unread`.
 * - `notificationclick` (on Herald's notifications only): focuses the app's
 *   tab already at `action_url`, else opens `action_url` (http and https
 *   only); without one, focuses a tab of the app (in the worker's scope first),
 *   else opens the app. The tab is told which notification was clicked
 *   (`{type: 'herald.notificationclick', id}`), so a `<herald-bell>` in it
 *   marks it read.
 * - `pushsubscriptionchange` (the browser dropped or renewed the
 *   subscription): subscribes again with the same key, so the browser keeps
 *   one; Herald learns the new endpoint when the user turns the switch on
 *   again (until then the switch reads off: Herald does not know it).
 *
 * `herald-sw.js` (the single-file build of this module, `dist/browser/`) is a
 * complete service worker: serve it from your app's origin and give its URL
 * to `<herald-bell service-worker="/herald-sw.js">`, or `importScripts()` it
 * from the service worker you already have. Its URL may carry `icon`, `badge`
 * (image URLs for the notification) and `url` (what a click opens when the
 * notification has no `action_url`; default: the worker's scope), e.g.
 * `/herald-sw.js?icon=/icon-192.png`.
 *
 * The handlers take their browser objects as arguments, so they can be used
 * from a worker of your own and tested with stand-ins.
 */

/** What Herald's worker sends (decrypted by the browser). */
export interface PushPayload {
  id: string;
  title: string;
  body?: string | null;
  action_url?: string | null;
  category?: string | null;
  /** The user's unread count when it was sent. */
  unread?: number | null;
}

/** What a shown notification carries in `notification.data`. */
export interface NotificationData {
  /** Marks Herald's notifications: a worker of the app's own may show others. */
  herald: true;
  id: string | null;
  action_url: string | null;
  category: string | null;
  /** Where a click goes when there is no `action_url`. */
  url: string;
}

/** The options of the worker, from its script URL's query (`?icon=&badge=&url=`). */
export interface WorkerOptions {
  icon?: string;
  badge?: string;
  /** Opened by a click on a notification without `action_url` (default: the scope). */
  url?: string;
}

/** The parts of `ServiceWorkerRegistration` the handlers use. */
export interface RegistrationLike {
  readonly scope: string;
  showNotification(title: string, options?: NotificationOptions & Record<string, unknown>): Promise<void>;
}

/** The parts of `WindowClient`. */
export interface WindowClientLike {
  readonly url: string;
  readonly focused?: boolean;
  readonly visibilityState?: string;
  focus(): Promise<WindowClientLike>;
  postMessage(message: unknown): void;
}

/** The parts of `Clients`. */
export interface ClientsLike {
  matchAll(options: { type: 'window'; includeUncontrolled: boolean }): Promise<readonly WindowClientLike[]>;
  openWindow(url: string): Promise<WindowClientLike | null>;
}

/** The badging API of `WorkerNavigator`, where the browser has it. */
export interface BadgeLike {
  setAppBadge?: (contents?: number) => Promise<void>;
  clearAppBadge?: () => Promise<void>;
}

/** The message a tab of the app gets when one of its notifications is clicked. */
export interface NotificationClickMessage {
  type: 'herald.notificationclick';
  id: string | null;
  action_url: string | null;
}

/** An absolute http(s) URL, or null: nothing else is ever opened. */
export function safeHttpUrl(raw: unknown, base?: string): string | null {
  if (typeof raw !== 'string' || !raw) return null;
  try {
    const u = base ? new URL(raw, base) : new URL(raw);
    return u.protocol === 'http:' || u.protocol === 'https:' ? u.href : null;
  } catch {
    return null;
  }
}

/** The worker's options from its own script URL (`self.location.href`). */
export function workerOptions(scriptUrl: string): WorkerOptions {
  const opts: WorkerOptions = {};
  let q: URLSearchParams;
  try {
    q = new URL(scriptUrl).searchParams;
  } catch {
    return opts;
  }
  for (const key of ['icon', 'badge', 'url'] as const) {
    const v = safeHttpUrl(q.get(key), scriptUrl);
    if (v) opts[key] = v;
  }
  return opts;
}

/** The payload of a push, or null when it is not Herald's. */
export function parsePayload(data: { json(): unknown } | { text(): string } | null | undefined): PushPayload | null {
  if (!data) return null;
  let value: unknown;
  try {
    value = 'json' in data ? data.json() : JSON.parse(data.text());
  } catch {
    return null;
  }
  const p = value as Partial<PushPayload> | null;
  if (!p || typeof p !== 'object' || typeof p.title !== 'string' || !p.title) return null;
  return {
    id: typeof p.id === 'string' ? p.id : '',
    title: p.title,
    body: typeof p.body === 'string' ? p.body : null,
    action_url: typeof p.action_url === 'string' ? p.action_url : null,
    category: typeof p.category === 'string' ? p.category : null,
    unread: typeof p.unread === 'number' && Number.isFinite(p.unread) && p.unread >= 0 ? Math.floor(p.unread) : null,
  };
}

/**
 * Shows one push: the system notification, then the app badge. A push that
 * is not Herald's still shows something (browsers require a visible
 * notification for every push, `userVisibleOnly`).
 */
export async function handlePush(
  payload: PushPayload | null,
  deps: { registration: RegistrationLike; badge?: BadgeLike; options?: WorkerOptions },
): Promise<void> {
  const { registration, badge, options = {} } = deps;
  const fallback = options.url || registration.scope;
  if (!payload) {
    await registration.showNotification('New notification', { data: { herald: true, id: null, action_url: null, category: null, url: fallback } satisfies NotificationData });
    return;
  }
  const data: NotificationData = {
    herald: true,
    id: payload.id || null,
    action_url: safeHttpUrl(payload.action_url),
    category: payload.category ?? null,
    url: fallback,
  };
  const shown: NotificationOptions & Record<string, unknown> = { data };
  if (payload.body) shown.body = payload.body;
  if (payload.id) shown.tag = payload.id;
  if (options.icon) shown.icon = options.icon;
  if (options.badge) shown.badge = options.badge;
  await registration.showNotification(payload.title, shown);
  if (payload.unread != null) await setBadge(badge, payload.unread);
}

/** Sets the app badge to `unread` (clears it at 0) where the browser can; never throws. */
export async function setBadge(badge: BadgeLike | undefined, unread: number): Promise<void> {
  try {
    if (unread > 0 && badge?.setAppBadge) await badge.setAppBadge(unread);
    else if (unread <= 0 && badge?.clearAppBadge) await badge.clearAppBadge();
  } catch {
    /* not an installed app, or no badging here */
  }
}

function sameUrl(a: string, b: string): boolean {
  try {
    const x = new URL(a);
    const y = new URL(b);
    x.hash = '';
    y.hash = '';
    return x.href === y.href;
  } catch {
    return false;
  }
}

/**
 * What a click on one of Herald's notifications does. Resolves with the tab
 * that was focused or opened (null when the browser opened none).
 */
export async function handleNotificationClick(
  notification: { data?: unknown; close(): void },
  deps: { clients: ClientsLike; scope: string },
): Promise<WindowClientLike | null> {
  notification.close();
  const raw = (notification.data ?? {}) as Partial<NotificationData>;
  const target = safeHttpUrl(raw.action_url);
  const home = safeHttpUrl(raw.url) || deps.scope;
  const message: NotificationClickMessage = { type: 'herald.notificationclick', id: typeof raw.id === 'string' ? raw.id : null, action_url: target };
  const windows = await deps.clients.matchAll({ type: 'window', includeUncontrolled: true });
  const tell = (c: WindowClientLike | null): WindowClientLike | null => {
    try {
      c?.postMessage(message);
    } catch {
      /* a tab of another origin */
    }
    return c;
  };

  if (target) {
    const there = windows.find((c) => sameUrl(c.url, target));
    if (there) return tell(await there.focus());
    return tell(await deps.clients.openWindow(target));
  }
  // No link: the app itself, in the tab the user is most likely to want (one in the
  // worker's scope first, then any of the origin's).
  const inScope = windows.filter((c) => c.url.startsWith(deps.scope));
  const pick = (list: readonly WindowClientLike[]) => list.find((c) => c.focused) || list.find((c) => c.visibilityState === 'visible') || list[0];
  const best = pick(inScope) || pick(windows);
  if (best) return tell(await best.focus());
  return tell(await deps.clients.openWindow(home));
}

/** The parts of `ServiceWorkerGlobalScope` that `installHeraldServiceWorker` uses. */
export interface WorkerScopeLike {
  readonly location: { href: string };
  readonly registration: RegistrationLike & { pushManager?: PushManager };
  readonly clients: ClientsLike;
  readonly navigator: BadgeLike;
  // `any`: each event type has its own shape (the handlers below declare theirs).
  addEventListener(type: string, listener: (event: any) => void): void;
}

/** Adds Herald's `push`, `notificationclick` and `pushsubscriptionchange` handlers to a service worker. */
export function installHeraldServiceWorker(scope: WorkerScopeLike): void {
  const options = workerOptions(scope.location.href);
  scope.addEventListener('push', (event: { data: PushMessageDataLike | null; waitUntil(p: Promise<unknown>): void }) => {
    event.waitUntil(handlePush(parsePayload(event.data), { registration: scope.registration, badge: scope.navigator, options }));
  });
  scope.addEventListener('notificationclick', (event: { notification: Notification; waitUntil(p: Promise<unknown>): void }) => {
    if (!isHeralds(event.notification)) return; // the app's own worker handles its own
    event.waitUntil(handleNotificationClick(event.notification, { clients: scope.clients, scope: scope.registration.scope }));
  });
  scope.addEventListener('pushsubscriptionchange', (event: { oldSubscription?: PushSubscription | null; waitUntil(p: Promise<unknown>): void }) => {
    const key = event.oldSubscription?.options?.applicationServerKey;
    const manager = scope.registration.pushManager;
    if (!key || !manager) return;
    event.waitUntil(manager.subscribe({ userVisibleOnly: true, applicationServerKey: key }).catch(() => undefined));
  });
}

/** Whether a notification was shown by `handlePush`. */
export function isHeralds(notification: { data?: unknown }): boolean {
  const d = notification.data as Partial<NotificationData> | null | undefined;
  return !!d && typeof d === 'object' && d.herald === true;
}

interface PushMessageDataLike {
  json(): unknown;
}
