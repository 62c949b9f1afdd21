/**
 * `Inbox`: the user's notifications and exact counts, kept current from REST
 * snapshots and the stream's inbox events. What the bell renders; usable on
 * its own for an app's own UI.
 *
 * Consistency rules:
 * - Events arrive in `seq` order, so the counts of the newest event are the truth.
 * - A REST answer that carries state (counts, a page, a notification) is
 *   applied only if no inbox event arrived while it was in flight
 *   (`eventGen`); otherwise the event is newer and wins, and a snapshot is
 *   fetched again.
 * - Notifications are keyed by id: an id is never listed twice. A grouped
 *   send (`notification.updated`) replaces the entry and moves it up by
 *   `latest_at`; a snoozed one (`notification.snoozed`) leaves the list and
 *   comes back with the `notification.updated` of its wake-up.
 * - `snoozed` holds the `status=snoozed` list once `loadSnoozed()` asked for
 *   it, kept current from the same events.
 * - The stream asks for a resync when it cannot prove it saw everything.
 */
import type { Counts, HeraldClient, Notification, NotificationPage } from './client.js';
import type { HeraldStream } from './stream.js';

export const INBOX_EVENTS = [
  'notification.created',
  'notification.updated',
  'notification.snoozed',
  'notification.expired',
  'inbox.read_all',
  'inbox.seen',
] as const;

const PAGE_SIZE = 20;
const time = (iso: string | null | undefined): number => {
  const t = iso ? Date.parse(iso) : NaN;
  return Number.isFinite(t) ? t : 0;
};

/** When an entry's newest notification arrived (`latest_at`; `created_at` from servers without groups). */
const latest = (n: Notification): number => time(n.latest_at || n.created_at);

/** Newest first by `latest_at`, as the server lists them; ids (UUIDv7) break ties. */
export function compareNotifications(a: Notification, b: Notification): number {
  const d = latest(b) - latest(a);
  if (d !== 0) return d;
  return a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
}

/** In the `all` list: neither archived nor snoozed. */
const listed = (n: Notification): boolean => !n.archived_at && !n.snoozed_until;

/**
 * Puts `n` in (or takes it out of) one paged list. The oldest entry held bounds
 * what we know of it unless it is `complete`: older ones come with the next page.
 */
function file(held: Map<string, Notification>, belongs: boolean, complete: boolean, n: Notification): void {
  if (!belongs) {
    held.delete(n.id);
    return;
  }
  if (!held.has(n.id) && !complete) {
    let oldest: Notification | null = null;
    for (const it of held.values()) if (!oldest || compareNotifications(it, oldest) > 0) oldest = it;
    if (oldest && compareNotifications(n, oldest) > 0) return;
  }
  held.set(n.id, n);
}

export interface InboxChange {
  /** Ids that just arrived live (not from a snapshot). */
  arrived: string[];
}

export class Inbox {
  readonly items = new Map<string, Notification>();
  /** The snoozed notifications, once `loadSnoozed()` fetched them (null until then). */
  snoozed: Map<string, Notification> | null = null;
  snoozedCursor: string | null = null;
  loadingSnoozed = false;
  snoozedError: string | null = null;
  counts: Counts | null = null;
  nextCursor: string | null = null;
  loaded = false;
  loadingMore = false;
  error: string | null = null;

  private eventGen = 0;
  private snoozedGen = 0;
  private refreshing: Promise<void> | null = null;
  private refreshAgain = false;
  private readonly listeners = new Set<(change: InboxChange) => void>();
  private readonly unsubscribe: Array<() => void> = [];

  constructor(private readonly client: HeraldClient, private readonly stream: HeraldStream) {
    for (const type of INBOX_EVENTS) {
      this.unsubscribe.push(stream.on(type, (env) => this.onEvent(type, env.data as Record<string, unknown>, env.created_at)));
    }
    this.unsubscribe.push(stream.onResync(null, (reason) => {
      if (reason === 'reset') this.eventGen++; // any snapshot in flight is stale now
      void this.refresh();
      if (this.snoozed) void this.loadSnoozed();
    }));
  }

  /** Calls `fn` after every change. */
  onChange(fn: (change: InboxChange) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  dispose(): void {
    for (const u of this.unsubscribe.splice(0)) u();
    this.listeners.clear();
  }

  get unread(): number | null {
    return this.counts ? this.counts.unread : null;
  }

  /** The loaded notifications, newest first, without the expired ones. */
  list(now = Date.now()): Notification[] {
    return Array.from(this.items.values())
      .filter((n) => !n.expires_at || time(n.expires_at) > now)
      .sort(compareNotifications);
  }

  /** The loaded snoozed notifications, the soonest back first. */
  listSnoozed(): Notification[] {
    return Array.from(this.snoozed?.values() ?? []).sort((a, b) => time(a.snoozed_until) - time(b.snoozed_until) || compareNotifications(a, b));
  }

  unreadLoaded(): number {
    let n = 0;
    for (const it of this.items.values()) if (!it.read_at) n++;
    return n;
  }

  private emit(arrived: string[] = []): void {
    for (const fn of this.listeners) {
      try {
        fn({ arrived });
      } catch (err) {
        console.error(err);
      }
    }
  }

  private setCounts(c: unknown): void {
    const counts = c as Counts | null;
    if (!counts || typeof counts.unread !== 'number') return;
    this.counts = { unread: counts.unread, unseen: counts.unseen, total: counts.total };
  }

  /** Files a notification's new state in `items` or `snoozed`, wherever it now belongs. */
  private upsert(n: Notification | undefined): void {
    if (!n || typeof n.id !== 'string') return;
    file(this.items, listed(n), !this.loaded || this.nextCursor === null, n);
    if (this.snoozed) file(this.snoozed, !!n.snoozed_until && !n.archived_at, this.snoozedCursor === null, n);
  }

  private onEvent(type: string, data: Record<string, unknown> | null, at: string): void {
    this.eventGen++;
    const arrived: string[] = [];
    if (type === 'notification.expired') {
      // Its `expires_at` passed: it has left lists and counts.
      const n = data?.notification as Notification | undefined;
      if (n && typeof n.id === 'string') {
        this.items.delete(n.id);
        this.snoozed?.delete(n.id);
      }
    } else if (type === 'notification.created' || type === 'notification.updated' || type === 'notification.snoozed') {
      // Created, changed, joined by a grouped send, snoozed or woken: the entry as it is now.
      const n = data?.notification as Notification | undefined;
      const before = n ? this.items.get(n.id) : undefined;
      this.upsert(n);
      // Unseen and newer than what we held: a new entry, a group's new notification, a wake-up.
      if (n && this.items.has(n.id) && !n.seen_at && !n.read_at && (!before || latest(n) > latest(before))) arrived.push(n.id);
    } else {
      // Only counts travel; apply the change to what we hold, up to the event's time.
      const field = type === 'inbox.read_all' ? 'read_at' : 'seen_at';
      const when = at || new Date().toISOString();
      const cutoff = time(when);
      for (const [id, n] of this.items) {
        if (!n[field] && latest(n) <= cutoff) this.items.set(id, { ...n, [field]: when });
      }
    }
    this.setCounts(data?.counts);
    this.emit(arrived);
  }

  private fetchPage(cursor: string | null): Promise<NotificationPage> {
    return this.client.listNotifications({ status: 'all', limit: PAGE_SIZE, cursor });
  }

  /** Counts and the first page, retried while inbox events race with it. Single-flight. */
  refresh(): Promise<void> {
    if (this.refreshing) {
      this.refreshAgain = true;
      return this.refreshing;
    }
    this.refreshing = (async () => {
      for (let attempt = 0; attempt < 5; attempt++) {
        this.refreshAgain = false;
        const gen = this.eventGen;
        let counts: Counts;
        let page: NotificationPage;
        try {
          [counts, page] = await Promise.all([this.client.counts(), this.fetchPage(null)]);
        } catch {
          this.error = "Couldn't load notifications.";
          this.emit();
          return;
        }
        const raced = this.eventGen !== gen || this.refreshAgain;
        if (raced && attempt < 4) continue;
        this.items.clear();
        for (const n of page.items || []) if (n && n.id && listed(n)) this.items.set(n.id, n);
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
  async loadMore(): Promise<void> {
    if (this.loadingMore || !this.loaded || !this.nextCursor) return;
    this.loadingMore = true;
    this.emit();
    const cursor = this.nextCursor;
    try {
      const page = await this.fetchPage(cursor);
      if (this.nextCursor === cursor) {
        for (const n of page.items || []) {
          // An id we already hold may carry newer state from an event: keep ours.
          if (!this.items.has(n.id) && listed(n)) this.items.set(n.id, n);
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

  async refreshCounts(): Promise<void> {
    const gen = this.eventGen;
    try {
      const c = await this.client.counts();
      if (this.eventGen === gen) {
        this.setCounts(c);
        this.emit();
      }
    } catch {
      /* the next event or refresh fixes it */
    }
  }

  /** Marks a notification read, unread or archived: at once here, exactly when the event comes. */
  async setState(id: string, action: 'read' | 'unread' | 'archive'): Promise<void> {
    const n = this.items.get(id);
    if (!n) return;
    const gen = this.eventGen;
    const wasUnread = !n.read_at;
    const c = this.counts;
    if (action === 'archive') {
      this.items.delete(id);
      if (wasUnread && c) c.unread = Math.max(0, c.unread - 1);
    } else if (action === 'read' && wasUnread) {
      this.items.set(id, { ...n, read_at: new Date().toISOString() });
      if (c) c.unread = Math.max(0, c.unread - 1);
    } else if (action === 'unread' && !wasUnread) {
      this.items.set(id, { ...n, read_at: null });
      if (c) c.unread += 1;
    }
    this.emit();
    try {
      const call = action === 'read' ? this.client.markRead(id) : action === 'unread' ? this.client.markUnread(id) : this.client.archive(id);
      const updated = await call;
      if (this.eventGen === gen && updated && updated.id === id) {
        this.upsert(updated);
        this.emit();
      }
      if (this.stream.status !== 'live') void this.refreshCounts();
    } catch (err) {
      this.error = action === 'archive' ? "Couldn't archive that notification." : "Couldn't update that notification.";
      void this.refresh();
      throw err;
    }
  }

  /** Snoozes a listed notification until `until`: out of the list at once, the counts exact when the event comes. */
  async snooze(id: string, until: Date): Promise<void> {
    const n = this.items.get(id);
    if (!n) return;
    const gen = this.eventGen;
    this.items.delete(id);
    if (!n.read_at && this.counts) this.counts.unread = Math.max(0, this.counts.unread - 1);
    this.emit();
    try {
      const snoozed = await this.client.snooze(id, until);
      if (this.eventGen === gen && snoozed && snoozed.id === id) {
        this.upsert(snoozed);
        this.emit();
      }
      if (this.stream.status !== 'live') void this.refreshCounts();
    } catch (err) {
      this.error = "Couldn't snooze that notification.";
      void this.refresh();
      throw err;
    }
  }

  /** Brings a snoozed notification back now: it returns to the top of the list, unread. */
  async unsnooze(id: string): Promise<void> {
    const gen = this.eventGen;
    this.snoozed?.delete(id);
    this.emit();
    try {
      const back = await this.client.unsnooze(id);
      if (this.eventGen === gen && back && back.id === id) {
        this.upsert(back);
        this.emit();
      }
      if (this.stream.status !== 'live') void this.refreshCounts();
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
  async loadSnoozed(more = false): Promise<void> {
    const cursor = more ? this.snoozedCursor : null;
    if (more && !cursor) return;
    const mine = ++this.snoozedGen;
    this.loadingSnoozed = true;
    this.emit();
    try {
      for (let attempt = 0; attempt < 5; attempt++) {
        const gen = this.eventGen;
        const page = await this.client.listNotifications({ status: 'snoozed', limit: PAGE_SIZE, cursor });
        if (mine !== this.snoozedGen) return;
        if (this.eventGen !== gen && attempt < 4) continue;
        const held = more && this.snoozed ? this.snoozed : new Map<string, Notification>();
        // An id we already hold may carry newer state from an event: keep ours.
        for (const n of page.items || []) if (n && n.id && n.snoozed_until && !n.archived_at && !held.has(n.id)) held.set(n.id, n);
        this.snoozed = held;
        this.snoozedCursor = page.next_cursor || null;
        this.snoozedError = null;
        return;
      }
    } catch {
      if (mine === this.snoozedGen) this.snoozedError = "Couldn't load the snoozed notifications.";
    } finally {
      if (mine === this.snoozedGen) {
        this.loadingSnoozed = false;
        this.emit();
      }
    }
  }

  async markAllRead(): Promise<void> {
    const gen = this.eventGen;
    const now = new Date().toISOString();
    for (const [id, n] of this.items) if (!n.read_at) this.items.set(id, { ...n, read_at: now });
    if (this.counts) this.counts.unread = 0;
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

  async markSeen(): Promise<void> {
    const gen = this.eventGen;
    try {
      const c = await this.client.seen();
      if (this.eventGen === gen) {
        this.setCounts(c);
        this.emit();
      }
    } catch {
      /* not worth an error */
    }
  }
}
