/**
 * `<herald-bell>`: a notification bell for any page, no framework.
 *
 *   <script type="module" src="herald-bell.js"></script>
 *   <herald-bell api-url="https://notify.example.com" stream-url="https://stream.example.com"></herald-bell>
 *   <script type="module">
 *     document.querySelector('herald-bell').getToken = async () => (await fetch('/session/herald-token')).text();
 *   </script>
 *
 * Attributes: `api-url`, `stream-url`, `token` (a user token; prefer the
 * `getToken` property, which keeps it out of the DOM), `share="false"` (one
 * stream per tab instead of per browser), `service-worker` (the URL of a
 * service worker running Herald's push handlers, `herald-sw.js`: turns on the
 * "Enable desktop notifications" switch and the app badge) and
 * `service-worker-scope`. Properties: `getToken` (async, returns the user's
 * token), `stream` (a `HeraldStream` to share with the rest of the page; its
 * owner starts it), `client`, `inbox`, `preferences`, `webPush`,
 * `categoryLabel` (names categories in the settings view), `snoozeOptions`
 * (the snooze menu's choices, `SnoozeOption[]`).
 *
 * A grouped entry reads "Maya and 2 others commented on Launch plan", with
 * its count on its icon (the rule: `group.ts`). Each entry has a Snooze
 * button and menu; a snoozed entry leaves the list until it comes back. The
 * clock in the dropdown's header opens the Snoozed view (Unsnooze brings one
 * back now); the gear opens the settings view: the desktop notifications
 * switch and the user's preferences per category.
 *
 * Reflects `data-unread` (the exact unread count, once known) and
 * `data-status` (the stream's status) on itself, and fires
 * `herald-unread` (`detail`: the counts) when the count changes.
 * Themable with CSS custom properties (see `bell-style.ts`); keyboard: the
 * button toggles, arrows move between notifications, Enter opens one,
 * Tab reaches an entry's buttons (Snooze opens its menu: arrows, Enter,
 * Escape), the Snoozed view, the settings and their switches (Space flips
 * one), Escape closes.
 */
import { HeraldClient, type Notification } from './client.js';
import { BELL_CSS } from './bell-style.js';
import { SettingsPanel, categoryLabel } from './bell-settings.js';
import { SnoozeMenu, SnoozedPanel, snoozeTime, type SnoozeOption } from './bell-snooze.js';
import { entrySummary, entryText } from './group.js';
import { Inbox } from './inbox.js';
import { UserPreferences } from './preferences.js';
import { WebPush } from './push.js';
import { HeraldStream } from './stream.js';
import type { NotificationClickMessage } from './sw.js';

const GEAR_ICON = '<svg viewBox="0 0 24 24" width="18" height="18" aria-hidden="true"><circle cx="12" cy="12" r="3" fill="none" stroke="currentColor" stroke-width="1.8"/><path d="M19.4 15a1.7 1.7 0 0 0 .3 1.8l.1.1a2 2 0 1 1-2.8 2.8l-.1-.1a1.7 1.7 0 0 0-1.8-.3 1.7 1.7 0 0 0-1 1.5V21a2 2 0 1 1-4 0v-.1a1.7 1.7 0 0 0-1.1-1.5 1.7 1.7 0 0 0-1.8.3l-.1.1a2 2 0 1 1-2.8-2.8l.1-.1a1.7 1.7 0 0 0 .3-1.8 1.7 1.7 0 0 0-1.5-1H3a2 2 0 1 1 0-4h.1a1.7 1.7 0 0 0 1.5-1.1 1.7 1.7 0 0 0-.3-1.8l-.1-.1a2 2 0 1 1 2.8-2.8l.1.1a1.7 1.7 0 0 0 1.8.3H9a1.7 1.7 0 0 0 1-1.5V3a2 2 0 1 1 4 0v.1a1.7 1.7 0 0 0 1 1.5 1.7 1.7 0 0 0 1.8-.3l.1-.1a2 2 0 1 1 2.8 2.8l-.1.1a1.7 1.7 0 0 0-.3 1.8V9a1.7 1.7 0 0 0 1.5 1H21a2 2 0 1 1 0 4h-.1a1.7 1.7 0 0 0-1.5 1z" fill="none" stroke="currentColor" stroke-width="1.8" stroke-linecap="round" stroke-linejoin="round"/></svg>';
const BACK_ICON = '<svg viewBox="0 0 24 24" width="18" height="18" aria-hidden="true"><path d="M15 18l-6-6 6-6" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round"/></svg>';
const BELL_ICON = '<svg viewBox="0 0 24 24" width="22" height="22" aria-hidden="true"><path d="M18 8a6 6 0 1 0-12 0c0 7-3 9-3 9h18s-3-2-3-9" fill="none" stroke="currentColor" stroke-width="1.8" stroke-linecap="round" stroke-linejoin="round"/><path d="M13.73 21a2 2 0 0 1-3.46 0" fill="none" stroke="currentColor" stroke-width="1.8" stroke-linecap="round" stroke-linejoin="round"/></svg>';
const clockIcon = (size: number): string => `<svg viewBox="0 0 24 24" width="${size}" height="${size}" aria-hidden="true"><circle cx="12" cy="12" r="8.5" fill="none" stroke="currentColor" stroke-width="1.8"/><path d="M12 7.5V12l3 2" fill="none" stroke="currentColor" stroke-width="1.8" stroke-linecap="round" stroke-linejoin="round"/></svg>`;
const HUES = [239, 199, 262, 160, 330, 24, 187, 292];

function hue(text: string): number {
  let h = 0;
  for (let i = 0; i < text.length; i++) h = (h * 31 + text.charCodeAt(i)) >>> 0;
  return HUES[h % HUES.length] ?? 239;
}

function relativeTime(iso: string, now: number): string {
  const t = Date.parse(iso);
  if (!Number.isFinite(t)) return '';
  const s = Math.max(0, Math.round((now - t) / 1000));
  if (s < 45) return 'just now';
  const m = Math.round(s / 60);
  if (m < 60) return m + 'm ago';
  const h = Math.round(m / 60);
  if (h < 24) return h + 'h ago';
  const d = Math.round(h / 24);
  if (d === 1) return 'yesterday';
  if (d < 7) return d + 'd ago';
  const date = new Date(t);
  const opts: Intl.DateTimeFormatOptions = { month: 'short', day: 'numeric' };
  if (date.getFullYear() !== new Date(now).getFullYear()) opts.year = 'numeric';
  return date.toLocaleDateString(undefined, opts);
}

/** Only http(s) links are followed. */
function safeUrl(raw: unknown): string | null {
  if (typeof raw !== 'string' || !raw) return null;
  try {
    const u = new URL(raw, window.location.href);
    return u.protocol === 'http:' || u.protocol === 'https:' ? u.href : null;
  } catch {
    return null;
  }
}

/** The `sub` of a JWT, unverified: only to keep different users' tabs apart. */
function tokenSubject(token: string): string | null {
  try {
    const part = (token.split('.')[1] ?? '').replace(/-/g, '+').replace(/_/g, '/');
    const bytes = Uint8Array.from(atob(part + '==='.slice((part.length + 3) % 4)), (c) => c.charCodeAt(0));
    const sub = JSON.parse(new TextDecoder().decode(bytes)).sub;
    return typeof sub === 'string' ? sub : null;
  } catch {
    return null;
  }
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, className?: string, text?: string): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

interface Row {
  li: HTMLLIElement;
  icon: HTMLElement;
  initial: HTMLElement;
  stack: HTMLElement;
  who: HTMLElement;
  rest: HTMLElement;
  by: HTMLElement;
  body: HTMLElement;
  when: HTMLTimeElement;
  cat: HTMLElement;
  dot: HTMLElement;
  toggle: HTMLButtonElement;
}

const Base: typeof HTMLElement = typeof HTMLElement === 'function' ? HTMLElement : (class {} as typeof HTMLElement);

export class HeraldBell extends Base {
  static get observedAttributes(): string[] {
    return ['api-url', 'stream-url', 'token', 'service-worker', 'service-worker-scope'];
  }

  /** Returns the user's access token (called for every REST call and stream token). */
  private _getToken: (() => string | null | undefined | Promise<string | null | undefined>) | null = null;
  private _stream: HeraldStream | null = null;
  private ownsStream = false;
  private _client: HeraldClient | null = null;
  private _inbox: Inbox | null = null;
  private _preferences: UserPreferences | null = null;
  private _webPush: WebPush | null = null;
  private _categoryLabel: (name: string) => string = categoryLabel;
  private readonly settings = new SettingsPanel();
  private readonly snoozeMenu = new SnoozeMenu();
  private readonly snoozedPanel = new SnoozedPanel();
  private initGen = 0;
  private open = false;
  private view: 'list' | 'settings' | 'snoozed' = 'list';
  private lastUnread: number | null = null;
  private readonly rows = new Map<string, Row>();
  private readonly fresh = new Set<string>();
  private readonly unsubs: Array<() => void> = [];
  private ringTimer: ReturnType<typeof setTimeout> | undefined;
  private seenTimer: ReturnType<typeof setTimeout> | undefined;
  private ageTimer: ReturnType<typeof setInterval> | undefined;
  private readonly ui: {
    bell: HTMLButtonElement;
    badge: HTMLElement;
    dropdown: HTMLElement;
    count: HTMLElement;
    title: HTMLElement;
    viewTitle: HTMLElement;
    markAll: HTMLButtonElement;
    snoozed: HTMLButtonElement;
    gear: HTMLButtonElement;
    back: HTMLButtonElement;
    scroll: HTMLElement;
    list: HTMLUListElement;
    empty: HTMLElement;
    loading: HTMLElement;
    error: HTMLElement;
    errorText: HTMLElement;
    live: HTMLElement;
  };

  constructor() {
    super();
    const root = this.attachShadow({ mode: 'open' });
    const style = el('style');
    style.textContent = BELL_CSS;
    const id = 'herald-dd-' + Math.random().toString(36).slice(2, 8);

    const bell = el('button', 'bell');
    bell.type = 'button';
    bell.part.add('button');
    bell.dataset.testid = 'bell';
    bell.setAttribute('aria-haspopup', 'dialog');
    bell.setAttribute('aria-expanded', 'false');
    bell.setAttribute('aria-controls', id);
    bell.setAttribute('aria-label', 'Notifications');
    bell.innerHTML = BELL_ICON; // a constant
    const badge = el('span', 'badge');
    badge.part.add('badge');
    badge.dataset.testid = 'badge';
    badge.hidden = true;
    badge.setAttribute('aria-hidden', 'true');
    bell.append(badge);

    const dropdown = el('section', 'dropdown');
    dropdown.id = id;
    dropdown.part.add('dropdown');
    dropdown.dataset.testid = 'dropdown';
    dropdown.setAttribute('role', 'dialog');
    dropdown.setAttribute('aria-label', 'Notifications');
    dropdown.hidden = true;
    const head = el('header', 'head');
    const start = el('div', 'head-start');
    const back = el('button', 'icon-btn');
    back.type = 'button';
    back.dataset.testid = 'settings-back';
    back.setAttribute('aria-label', 'Back to notifications');
    back.innerHTML = BACK_ICON; // a constant
    back.hidden = true;
    const title = el('h2', 'title', 'Notifications ');
    const count = el('span', 'count');
    title.append(count);
    const viewTitle = el('h2', 'title');
    viewTitle.hidden = true;
    start.append(back, title, viewTitle);
    const markAll = el('button', 'link', 'Mark all read');
    markAll.type = 'button';
    markAll.dataset.testid = 'mark-all-read';
    const gear = el('button', 'icon-btn');
    gear.type = 'button';
    gear.dataset.testid = 'settings-button';
    gear.setAttribute('aria-label', 'Notification settings');
    gear.title = 'Notification settings';
    gear.innerHTML = GEAR_ICON; // a constant
    const snoozed = el('button', 'icon-btn');
    snoozed.type = 'button';
    snoozed.dataset.testid = 'snoozed-button';
    snoozed.setAttribute('aria-label', 'Snoozed notifications');
    snoozed.title = 'Snoozed notifications';
    snoozed.innerHTML = clockIcon(18); // built from constants
    const actions = el('div', 'head-actions');
    actions.append(markAll, snoozed, gear);
    head.append(start, actions);
    const scroll = el('div', 'scroll');
    scroll.dataset.testid = 'list';
    const list = el('ul', 'items');
    list.setAttribute('role', 'list');
    list.setAttribute('aria-label', 'Notifications, newest first');
    const empty = el('div', 'empty');
    empty.dataset.testid = 'empty';
    empty.hidden = true;
    empty.append(el('p', 'empty-title', "You're all caught up"), el('p', 'empty-text', 'New notifications will show up here as they happen.'));
    const loading = el('div', 'note');
    loading.dataset.testid = 'loading';
    loading.hidden = true;
    loading.append(el('span', 'spinner'), document.createTextNode('Loading…'));
    const error = el('div', 'note error');
    error.hidden = true;
    const errorText = el('span');
    const retry = el('button', 'link', 'Retry');
    retry.type = 'button';
    error.append(errorText, retry);
    scroll.append(list, empty, loading, error);
    const footer = el('footer', 'footer', 'Delivered live by Herald');
    dropdown.append(head, scroll, this.snoozedPanel.root, this.settings.root, footer, this.snoozeMenu.root);
    const live = el('div', 'sr');
    live.setAttribute('aria-live', 'polite');
    root.append(style, bell, dropdown, live);
    this.ui = { bell, badge, dropdown, count, title, viewTitle, markAll, snoozed, gear, back, scroll, list, empty, loading, error, errorText, live };

    bell.addEventListener('click', (e) => {
      e.stopPropagation();
      if (this.open) this.closeDropdown();
      else this.openDropdown();
    });
    markAll.addEventListener('click', () => void this._inbox?.markAllRead().catch(() => this.render()));
    gear.addEventListener('click', () => this.showSettings());
    snoozed.addEventListener('click', () => this.showSnoozed());
    back.addEventListener('click', () => this.showList());
    retry.addEventListener('click', () => {
      if (this._inbox) this._inbox.error = null;
      void this._inbox?.refresh();
    });
    scroll.addEventListener('scroll', () => {
      this.snoozeMenu.close(); // it stays where its button was
      this.fillViewport();
    }, { passive: true });
    list.addEventListener('click', (e) => this.onListClick(e));
    list.addEventListener('keydown', (e) => this.onListKey(e));
    dropdown.addEventListener('keydown', (e) => {
      if (e.key === 'Escape') {
        e.stopPropagation();
        this.closeDropdown();
        this.ui.bell.focus();
      }
    });
    bell.addEventListener('keydown', (e) => {
      if (e.key === 'Escape' && this.open) this.closeDropdown();
      if (e.key === 'ArrowDown' && this.open) {
        e.preventDefault();
        this.focusItem(0);
      }
    });
  }

  // ------------------------------------------------------------- public properties

  get getToken(): (() => string | null | undefined | Promise<string | null | undefined>) | null {
    return this._getToken;
  }
  set getToken(fn: (() => string | null | undefined | Promise<string | null | undefined>) | null) {
    this._getToken = typeof fn === 'function' ? fn : null;
    this.restart();
  }

  /** The stream the bell listens to. Set it before the bell connects to share the page's own. */
  get stream(): HeraldStream | null {
    return this._stream;
  }
  set stream(s: HeraldStream | null) {
    if (s === this._stream) return;
    this.teardown();
    this._stream = s;
    this.ownsStream = false;
    this.restart();
  }

  get client(): HeraldClient | null {
    return this._client;
  }

  get inbox(): Inbox | null {
    return this._inbox;
  }

  /** The user's preferences, once the bell is connected. */
  get preferences(): UserPreferences | null {
    return this._preferences;
  }

  /** This browser's Web Push switch, when `service-worker` is set. */
  get webPush(): WebPush | null {
    return this._webPush;
  }

  /** Names a category in the settings view (default: `billing.invoice` → "Billing invoice"). */
  get categoryLabel(): (name: string) => string {
    return this._categoryLabel;
  }
  set categoryLabel(fn: (name: string) => string) {
    this._categoryLabel = typeof fn === 'function' ? fn : categoryLabel;
    this.settings.categoryLabels = this._categoryLabel;
  }

  /** The snooze menu's choices (default: for 1 hour, until tomorrow 9:00, until next Monday 9:00). */
  get snoozeOptions(): readonly SnoozeOption[] {
    return this.snoozeMenu.options;
  }
  set snoozeOptions(options: readonly SnoozeOption[]) {
    this.snoozeMenu.options = options;
  }

  /** The exact unread count, or null before it is known. */
  get unread(): number | null {
    return this._inbox?.unread ?? null;
  }

  // ------------------------------------------------------------- lifecycle

  connectedCallback(): void {
    document.addEventListener('click', this.onDocumentClick);
    if (typeof navigator !== 'undefined' && navigator.serviceWorker) navigator.serviceWorker.addEventListener('message', this.onWorkerMessage);
    this.ageTimer = setInterval(() => {
      if (this.open) this.render();
    }, 30_000);
    this.restart();
  }

  disconnectedCallback(): void {
    document.removeEventListener('click', this.onDocumentClick);
    if (typeof navigator !== 'undefined' && navigator.serviceWorker) navigator.serviceWorker.removeEventListener('message', this.onWorkerMessage);
    clearInterval(this.ageTimer);
    this.teardown();
  }

  attributeChangedCallback(name: string, oldValue: string | null, newValue: string | null): void {
    if (oldValue === newValue) return;
    if (name === 'service-worker' || name === 'service-worker-scope') {
      this.attachSettings();
      return;
    }
    this.teardown();
    this.restart();
  }

  private readonly onDocumentClick = (e: MouseEvent) => {
    if (this.open && !e.composedPath().includes(this)) this.closeDropdown();
  };

  /** A click on one of our system notifications (herald-sw.js tells the tab it focused or opened): it has been read. */
  private readonly onWorkerMessage = (e: MessageEvent) => {
    const msg = e.data as Partial<NotificationClickMessage> | null;
    if (!msg || msg.type !== 'herald.notificationclick' || typeof msg.id !== 'string' || !msg.id) return;
    const inbox = this._inbox;
    const n = inbox?.items.get(msg.id);
    if (inbox && n) {
      if (!n.read_at) void inbox.setState(msg.id, 'read').catch(() => this.render());
    } else {
      void this._client?.markRead(msg.id).catch(() => { /* gone, or not ours */ });
    }
  };

  /** (Re)creates the Web Push switch from the `service-worker` attributes and hands the stores to the settings view. */
  private attachSettings(): void {
    const url = this.getAttribute('service-worker');
    const client = this._client;
    this._webPush = client && url
      ? new WebPush({ client, serviceWorker: url, scope: this.getAttribute('service-worker-scope') || undefined })
      : null;
    this.settings.attach(this._preferences, this._webPush);
    if (this.settings.visible) this.settings.show();
  }

  private tokenSource(): (() => Promise<string | null>) | null {
    const fn = this._getToken;
    if (fn) return async () => (await fn()) || null;
    const attr = this.getAttribute('token');
    return attr ? async () => this.getAttribute('token') : null;
  }

  /** Starts once the bell is in a document and has its URLs and a token source. */
  private restart(): void {
    const gen = ++this.initGen;
    queueMicrotask(() => {
      if (gen === this.initGen) void this.init(gen);
    });
  }

  private async init(gen: number): Promise<void> {
    if (!this.isConnected || this._inbox) return;
    const apiUrl = this.getAttribute('api-url');
    const streamUrl = this.getAttribute('stream-url');
    const token = this.tokenSource();
    if (!apiUrl || !token || (!streamUrl && !this._stream)) return;
    const client = new HeraldClient({ baseUrl: apiUrl, token, onUnauthorized: () => this.showError('Your session has expired (401).') });
    let stream = this._stream;
    if (!stream) {
      let sub: string | null = null;
      try {
        const t = await token();
        sub = t ? tokenSubject(t) : null;
      } catch {
        /* the first REST call reports it */
      }
      if (gen !== this.initGen || !this.isConnected || this._inbox) return;
      stream = new HeraldStream({
        url: streamUrl as string,
        getToken: (topics) => client.createStreamToken(topics),
        key: `${streamUrl}|${sub ?? ''}`,
        share: this.getAttribute('share') !== 'false',
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
    this.unsubs.push(
      inbox.onChange((change) => this.onInboxChange(change.arrived)),
      stream.onState((status) => {
        this.dataset.status = status;
      }),
      stream.onError(() => this.showError('The server refused this token (401/403).')),
    );
    this.dataset.status = stream.status;
    this.render();
    void inbox.refresh(); // the badge shows even while the gateway is unreachable
    if (this.ownsStream) stream.start(); // a stream given to us is started by its owner
  }

  private teardown(): void {
    this.initGen++;
    for (const u of this.unsubs.splice(0)) u();
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
    for (const r of this.rows.values()) r.li.remove();
    this.rows.clear();
  }

  private showError(text: string): void {
    this.ui.errorText.textContent = text;
    this.ui.error.hidden = false;
    this.ui.bell.title = text;
  }

  // ------------------------------------------------------------- dropdown

  private openDropdown(): void {
    if (this.open) return;
    this.open = true;
    this.ui.dropdown.hidden = false;
    this.ui.bell.setAttribute('aria-expanded', 'true');
    this.setView('list');
    const inbox = this._inbox;
    if (inbox && !inbox.loaded) void inbox.refresh();
    this.render();
    this.markSeenSoon(0);
    this.fillViewport();
    this.dispatchEvent(new CustomEvent('herald-open', { bubbles: true, composed: true }));
  }

  private closeDropdown(): void {
    if (!this.open) return;
    this.open = false;
    this.snoozeMenu.close();
    this.ui.dropdown.hidden = true;
    this.ui.bell.setAttribute('aria-expanded', 'false');
  }

  /** Shows the notifications list (the default view), the snoozed list or the settings: only the DOM. */
  private setView(view: 'list' | 'settings' | 'snoozed'): void {
    const { scroll, title, viewTitle, back, snoozed, gear, markAll } = this.ui;
    this.view = view;
    const list = view === 'list';
    scroll.hidden = !list;
    title.hidden = !list;
    markAll.hidden = !list;
    snoozed.hidden = !list;
    gear.hidden = !list;
    viewTitle.hidden = list;
    viewTitle.textContent = view === 'snoozed' ? 'Snoozed' : 'Notification settings';
    back.hidden = list;
    this.snoozeMenu.close();
    if (view === 'snoozed') this.snoozedPanel.show();
    else this.snoozedPanel.hide();
    if (view === 'settings') this.settings.show();
    else this.settings.hide();
  }

  /** Back to the list: it is on screen again, so it is seen. */
  private showList(): void {
    const from = this.view;
    this.setView('list');
    this.render();
    this.markSeenSoon(0);
    this.fillViewport();
    (from === 'snoozed' ? this.ui.snoozed : this.ui.gear).focus();
  }

  /** The snoozed notifications, with Unsnooze. */
  private showSnoozed(): void {
    this.setView('snoozed');
    (this.snoozedPanel.firstControl() ?? this.ui.back).focus();
  }

  /** The settings view: desktop notifications and preferences per category. */
  private showSettings(): void {
    this.setView('settings');
    (this.settings.firstControl() ?? this.ui.back).focus();
  }

  /** True while the notifications list is on screen (what "seen" means). */
  private listShown(): boolean {
    return this.open && this.view === 'list';
  }

  private markSeenSoon(delay: number): void {
    clearTimeout(this.seenTimer);
    this.seenTimer = setTimeout(() => void this._inbox?.markSeen(), delay);
  }

  /** Infinite scroll: near the bottom (or nothing to scroll yet), fetch the next page. */
  private fillViewport(): void {
    const inbox = this._inbox;
    if (!this.listShown() || !inbox || !inbox.nextCursor || inbox.loadingMore) return;
    const s = this.ui.scroll;
    if (s.scrollHeight - s.scrollTop - s.clientHeight < 120) void inbox.loadMore().then(() => this.fillViewport());
  }

  private ring(): void {
    const b = this.ui.bell;
    b.classList.remove('ring');
    void b.offsetWidth; // restart the animation
    b.classList.add('ring');
    clearTimeout(this.ringTimer);
    this.ringTimer = setTimeout(() => b.classList.remove('ring'), 800);
  }

  private onInboxChange(arrived: string[]): void {
    for (const id of arrived) this.fresh.add(id);
    if (arrived.length) {
      this.ring();
      if (this.listShown()) this.markSeenSoon(600); // it is on screen: it has been seen
      const n = this._inbox?.items.get(arrived[arrived.length - 1] as string);
      if (n) this.ui.live.textContent = 'New notification: ' + entrySummary(n);
    }
    this.render();
    this.fillViewport();
  }

  // ------------------------------------------------------------- list interaction

  private onListClick(e: MouseEvent): void {
    const li = (e.target as Element).closest('li.item') as HTMLLIElement | null;
    if (!li || !this._inbox) return;
    const id = li.dataset.id as string;
    const button = (e.target as Element).closest('button[data-action]') as HTMLButtonElement | null;
    if (button) {
      e.stopPropagation();
      if (button.dataset.action === 'snooze') this.snoozeMenu.toggle(button, (until) => this.snooze(id, until));
      else void this._inbox.setState(id, button.dataset.action as 'read' | 'unread' | 'archive').catch(() => this.render());
      return;
    }
    this.activate(id);
  }

  private activate(id: string): void {
    const n = this._inbox?.items.get(id);
    if (!n || !this._inbox) return;
    const marked = n.read_at ? Promise.resolve() : this._inbox.setState(id, 'read').catch(() => this.render());
    const link = safeUrl(n.action_url);
    const go = this.dispatchEvent(new CustomEvent('herald-select', { bubbles: true, composed: true, cancelable: true, detail: n }));
    if (!link || !go) return;
    // Leaving the page now would abandon the request that marks it read (a
    // cross-origin POST, preflight first): go once it is answered, or after 2 s.
    void Promise.race([marked, new Promise((resolve) => setTimeout(resolve, 2000))]).then(() => window.location.assign(link));
  }

  /** Snoozes one: it leaves the list at once, and focus goes to the entry that took its place (or the Snoozed button). */
  private snooze(id: string, until: Date): void {
    const inbox = this._inbox;
    if (!inbox) return;
    const i = this.items().findIndex((li) => li.dataset.id === id);
    void inbox.snooze(id, until).catch(() => this.render());
    this.ui.live.textContent = 'Snoozed until ' + snoozeTime(until);
    if (this.items().length) this.focusItem(i);
    else this.ui.snoozed.focus(); // where it went
  }

  private items(): HTMLLIElement[] {
    return Array.from(this.ui.list.children) as HTMLLIElement[];
  }

  private focusItem(index: number): void {
    const items = this.items();
    if (!items.length) {
      this.ui.markAll.focus();
      return;
    }
    const i = Math.max(0, Math.min(items.length - 1, index));
    for (const [k, li] of items.entries()) li.tabIndex = k === i ? 0 : -1;
    items[i]?.focus();
  }

  private onListKey(e: KeyboardEvent): void {
    const items = this.items();
    const li = (e.target as Element).closest('li.item') as HTMLLIElement | null;
    if (!li) return;
    const i = items.indexOf(li);
    const moves: Record<string, number> = { ArrowDown: i + 1, ArrowUp: i - 1, Home: 0, End: items.length - 1 };
    if (e.key in moves) {
      e.preventDefault();
      this.focusItem(moves[e.key] as number);
      if (e.key === 'ArrowDown' && i + 1 >= items.length) void this._inbox?.loadMore();
    } else if ((e.key === 'Enter' || e.key === ' ') && e.target === li) {
      e.preventDefault();
      this.activate(li.dataset.id as string);
    }
  }

  // ------------------------------------------------------------- rendering

  private render(): void {
    const inbox = this._inbox;
    const unread = inbox ? inbox.unread : null;
    const { bell, badge, count, markAll } = this.ui;
    if (unread !== null) this.dataset.unread = String(unread);
    else delete this.dataset.unread;
    if (unread && unread > 0) {
      badge.textContent = String(unread); // exact, never capped
      badge.hidden = false;
      bell.setAttribute('aria-label', `Notifications, ${unread} unread`);
    } else {
      badge.textContent = '';
      badge.hidden = true;
      bell.setAttribute('aria-label', 'Notifications');
    }
    count.textContent = unread ? `${unread} unread` : '';
    markAll.disabled = !(unread && unread > 0) && !(inbox && inbox.unreadLoaded() > 0);
    if (unread !== this.lastUnread) {
      this.lastUnread = unread;
      if (inbox?.counts) this.dispatchEvent(new CustomEvent('herald-unread', { bubbles: true, composed: true, detail: { ...inbox.counts } }));
      if (unread !== null && this._webPush) this.updateAppBadge(unread);
    }
    if (this.open) this.renderList();
    if (this.open && this.view === 'snoozed') this.snoozedPanel.render();
  }

  /** The app badge (installed apps) follows the exact count while a tab is open; herald-sw.js sets it on each push. */
  private updateAppBadge(unread: number): void {
    const nav = navigator as Navigator & { setAppBadge?: (n?: number) => Promise<void>; clearAppBadge?: () => Promise<void> };
    const call = unread > 0 ? nav.setAppBadge?.(unread) : nav.clearAppBadge?.();
    call?.catch(() => { /* not an installed app */ });
  }

  private renderList(): void {
    const inbox = this._inbox;
    if (!inbox) return;
    const now = Date.now();
    const sorted = inbox.list(now);
    const keep = new Set<string>();
    let prev: HTMLLIElement | null = null;
    const focusable = this.items().find((li) => li.tabIndex === 0)?.dataset.id;
    for (const n of sorted) {
      keep.add(n.id);
      let row = this.rows.get(n.id);
      if (!row) {
        row = this.createRow(n.id);
        this.rows.set(n.id, row);
      }
      this.updateRow(row, n, now);
      const wanted: ChildNode | null = prev ? prev.nextSibling : this.ui.list.firstChild;
      if (wanted !== row.li) this.ui.list.insertBefore(row.li, wanted);
      prev = row.li;
    }
    for (const [id, row] of this.rows) {
      if (!keep.has(id)) {
        row.li.remove();
        this.rows.delete(id);
      }
    }
    const first = this.ui.list.firstElementChild as HTMLLIElement | null;
    if (first && !(focusable && keep.has(focusable))) first.tabIndex = 0;
    for (const id of this.fresh) this.rows.get(id)?.li.classList.add('fresh');
    this.fresh.clear();
    this.snoozeMenu.place(); // its row may have moved, or gone

    const loading = !inbox.loaded && !inbox.error;
    this.ui.loading.hidden = !(loading || inbox.loadingMore);
    if (inbox.error) this.showError(inbox.error);
    else if (!this.ui.bell.title) this.ui.error.hidden = true;
    this.ui.empty.hidden = !(inbox.loaded && sorted.length === 0 && !inbox.nextCursor);
  }

  private createRow(id: string): Row {
    const li = el('li', 'item');
    li.part.add('item');
    li.dataset.testid = 'notification';
    li.dataset.id = id;
    li.tabIndex = -1;
    const icon = el('div', 'icon');
    icon.setAttribute('aria-hidden', 'true');
    const initial = el('span');
    const stack = el('span', 'stack');
    stack.dataset.testid = 'group-count';
    icon.append(initial, stack);
    const main = el('div', 'main');
    const title = el('div', 'item-title');
    title.dataset.testid = 'title';
    const who = el('span', 'who');
    who.dataset.testid = 'actors';
    const rest = el('span');
    title.append(who, rest);
    const by = el('div', 'by');
    by.dataset.testid = 'by';
    const body = el('div', 'body');
    body.dataset.testid = 'body';
    const meta = el('div', 'meta');
    const when = el('time');
    when.dataset.testid = 'time';
    const sep = el('span', undefined, '·');
    sep.setAttribute('aria-hidden', 'true');
    const cat = el('span', 'cat');
    meta.append(when, sep, cat);
    const dot = el('span', 'dot');
    dot.dataset.testid = 'unread-dot';
    const actions = el('div', 'actions');
    const toggle = el('button');
    toggle.type = 'button';
    const snooze = el('button', 'action subtle icon-action');
    snooze.type = 'button';
    snooze.innerHTML = clockIcon(15); // built from constants
    snooze.setAttribute('aria-label', 'Snooze');
    snooze.title = 'Snooze';
    snooze.dataset.testid = 'snooze';
    snooze.dataset.action = 'snooze';
    snooze.setAttribute('aria-haspopup', 'menu');
    snooze.setAttribute('aria-expanded', 'false');
    const archive = el('button', 'action subtle', 'Archive');
    archive.type = 'button';
    archive.dataset.testid = 'archive';
    archive.dataset.action = 'archive';
    actions.append(toggle, snooze, archive);
    const foot = el('div', 'foot');
    foot.append(meta, actions);
    main.append(title, by, body, foot);
    li.append(icon, main, dot);
    return { li, icon, initial, stack, who, rest, by, body, when, cat, dot, toggle };
  }

  private updateRow(r: Row, n: Notification, now: number): void {
    const unread = !n.read_at;
    r.li.classList.toggle('unread', unread);
    r.li.dataset.unread = String(unread);
    r.li.classList.toggle('linked', !!safeUrl(n.action_url));
    const category = typeof n.category === 'string' ? n.category : '';
    const initial = category[0] || '•';
    if (r.initial.textContent !== initial) {
      r.initial.textContent = initial;
      r.icon.style.setProperty('--hue', String(hue(category)));
    }
    const count = n.group_count ?? 1;
    r.stack.textContent = count > 1 ? String(count) : '';
    r.stack.hidden = count <= 1;
    const text = entryText(n);
    if (r.who.textContent !== (text.lead ?? '')) r.who.textContent = text.lead ?? '';
    if (r.rest.textContent !== text.rest) r.rest.textContent = text.rest;
    r.by.textContent = text.by ?? '';
    r.by.hidden = !text.by;
    const body = n.body == null ? '' : String(n.body);
    if (r.body.textContent !== body) r.body.textContent = body;
    r.body.hidden = !body;
    const at = n.latest_at || n.created_at; // a group's newest notification
    r.when.dateTime = at || '';
    r.when.title = at ? new Date(at).toLocaleString() : '';
    r.when.textContent = relativeTime(at, now);
    r.cat.textContent = category;
    r.dot.setAttribute('aria-label', unread ? 'Unread' : 'Read');
    r.li.setAttribute('aria-label', `${unread ? 'Unread: ' : ''}${entrySummary(n)}${count > 1 ? `, ${count} notifications` : ''}`);
    const wanted = unread ? 'read' : 'unread';
    if (r.toggle.dataset.action !== wanted) {
      r.toggle.dataset.action = wanted;
      r.toggle.dataset.testid = unread ? 'mark-read' : 'mark-unread';
      r.toggle.className = unread ? 'action primary' : 'action subtle';
      r.toggle.textContent = unread ? 'Mark read' : 'Mark unread';
    }
  }
}

/** Defines `<herald-bell>` (once; importing this module does it). */
export function defineHeraldBell(name = 'herald-bell'): void {
  if (typeof customElements !== 'undefined' && !customElements.get(name)) customElements.define(name, HeraldBell);
}

defineHeraldBell();

declare global {
  interface HTMLElementTagNameMap {
    'herald-bell': HeraldBell;
  }
}

export { DEFAULT_SNOOZE_OPTIONS, type SnoozeOption } from './bell-snooze.js';
export * from './index.js';
