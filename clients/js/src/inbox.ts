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
 * - Notifications are keyed by id: an id is never listed twice.
 * - The stream asks for a resync when it cannot prove it saw everything.
 */
import type { Counts, HeraldClient, Notification, NotificationPage } from './client.js';
import type { HeraldStream } from './stream.js';

export const INBOX_EVENTS = [
  'notification.created',
  'notification.updated',
  'notification.expired',
  'inbox.read_all',
  'inbox.seen',
] as const;

const PAGE_SIZE = 20;
const time = (iso: string | null | undefined): number => {
  const t = iso ? Date.parse(iso) : NaN;
  return Number.isFinite(t) ? t : 0;
};

/** Newest first; ids (UUIDv7) break ties. */
export function compareNotifications(a: Notification, b: Notification): number {
  const d = time(b.created_at) - time(a.created_at);
  if (d !== 0) return d;
  return a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
}

export interface InboxChange {
  /** Ids that just arrived live (not from a snapshot). */
  arrived: string[];
}

export class Inbox {
  readonly items = new Map<string, Notification>();
  counts: Counts | null = null;
  nextCursor: string | null = null;
  loaded = false;
  loadingMore = false;
  error: string | null = null;

  private eventGen = 0;
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

  /** The oldest loaded item bounds what we know: older ones come with pagination. */
  private inLoadedRange(n: Notification): boolean {
    if (!this.loaded || this.nextCursor === null) return true;
    let oldest: Notification | null = null;
    for (const it of this.items.values()) if (!oldest || compareNotifications(it, oldest) > 0) oldest = it;
    return !oldest || compareNotifications(n, oldest) <= 0;
  }

  private upsert(n: Notification | undefined): void {
    if (!n || typeof n.id !== 'string') return;
    if (n.archived_at) {
      this.items.delete(n.id);
      return;
    }
    if (!this.items.has(n.id) && !this.inLoadedRange(n)) return;
    this.items.set(n.id, n);
  }

  private onEvent(type: string, data: Record<string, unknown> | null, at: string): void {
    this.eventGen++;
    const arrived: string[] = [];
    if (type === 'notification.created' || type === 'notification.updated') {
      const n = data?.notification as Notification | undefined;
      const isNew = !!n && !this.items.has(n.id);
      this.upsert(n);
      if (type === 'notification.created' && n && isNew && this.items.has(n.id)) arrived.push(n.id);
    } else if (type === 'notification.expired') {
      // Its `expires_at` passed: it has left lists and counts.
      const n = data?.notification as Notification | undefined;
      if (n && typeof n.id === 'string') this.items.delete(n.id);
    } else {
      // Only counts travel; apply the change to what we hold, up to the event's time.
      const field = type === 'inbox.read_all' ? 'read_at' : 'seen_at';
      const when = at || new Date().toISOString();
      const cutoff = time(when);
      for (const [id, n] of this.items) {
        if (!n[field] && time(n.created_at) <= cutoff) this.items.set(id, { ...n, [field]: when });
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
        for (const n of page.items || []) if (n && n.id && !n.archived_at) this.items.set(n.id, n);
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
          if (!this.items.has(n.id) && !n.archived_at) this.items.set(n.id, n);
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
