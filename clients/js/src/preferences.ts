/**
 * `UserPreferences`: the user's notification preferences (per category, per
 * channel), kept current from REST and the stream's `preferences.updated`
 * events, so every open tab's settings agree. What the bell's settings panel
 * renders; usable on its own for an app's own settings page.
 *
 * Consistency rules (those of `Inbox`):
 * - Every `preferences.updated` event carries the whole state after a change,
 *   and events arrive in `seq` order: the newest event is the truth.
 * - A REST answer (a `GET`, or the state a `PUT` returns) is applied only if
 *   no event arrived while it was in flight; otherwise the event is newer.
 * - A change shows at once (`pending`), and is undone if the server refuses it.
 */
import { HeraldError, type CategoryPreference, type Channel, type HeraldClient, type Preferences } from './client.js';
import type { HeraldStream } from './stream.js';

export const PREFERENCE_EVENTS = ['preferences.updated'] as const;

export interface PreferencesChangeEvent {
  /** The category whose change the server refused, with its message (a 422 names it). */
  refused?: { category: string; channel: Channel; message: string; status: number };
}

export class UserPreferences {
  /** The categories, by name, as the server last said (with pending changes applied). */
  categories: Map<string, CategoryPreference> = new Map();
  loaded = false;
  error: string | null = null;
  /** `category/channel` keys of changes not yet answered. */
  readonly pending = new Set<string>();

  private eventGen = 0;
  private loading: Promise<void> | null = null;
  private readonly listeners = new Set<(change: PreferencesChangeEvent) => void>();
  private readonly unsubscribe: Array<() => void> = [];

  constructor(private readonly client: HeraldClient, stream: HeraldStream) {
    this.unsubscribe.push(
      stream.on('preferences.updated', (env) => {
        const prefs = (env.data as { preferences?: Preferences } | null)?.preferences;
        if (!prefs || typeof prefs.categories !== 'object') return;
        this.eventGen++;
        this.apply(prefs);
      }),
      stream.onResync(null, () => {
        if (this.loaded) void this.refresh();
      }),
    );
  }

  /** Calls `fn` after every change. */
  onChange(fn: (change: PreferencesChangeEvent) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  dispose(): void {
    for (const u of this.unsubscribe.splice(0)) u();
    this.listeners.clear();
  }

  /** The categories sorted by name: what a settings panel lists. */
  list(): Array<[string, CategoryPreference]> {
    return Array.from(this.categories.entries()).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  }

  private emit(change: PreferencesChangeEvent = {}): void {
    for (const fn of this.listeners) {
      try {
        fn(change);
      } catch (err) {
        console.error(err);
      }
    }
  }

  private apply(prefs: Preferences): void {
    const next = new Map<string, CategoryPreference>();
    for (const [name, c] of Object.entries(prefs.categories || {})) {
      if (c && typeof c === 'object') next.set(name, { in_app: !!c.in_app, web_push: !!c.web_push, required: !!c.required });
    }
    this.categories = next;
    this.loaded = true;
    this.error = null;
    this.emit();
  }

  /** `GET /v1/me/preferences`, retried while events race with it. Single-flight. */
  refresh(): Promise<void> {
    if (this.loading) return this.loading;
    this.loading = (async () => {
      for (let attempt = 0; attempt < 5; attempt++) {
        const gen = this.eventGen;
        let prefs: Preferences;
        try {
          prefs = await this.client.preferences();
        } catch {
          this.error = "Couldn't load your notification settings.";
          this.emit();
          return;
        }
        if (this.eventGen !== gen && attempt < 4) continue; // an event is newer
        if (this.eventGen === gen) this.apply(prefs);
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
  async set(category: string, channel: Channel, on: boolean): Promise<void> {
    const key = `${category}/${channel}`;
    const before = this.categories.get(category);
    if (before) this.categories.set(category, { ...before, [channel]: on });
    this.pending.add(key);
    this.emit();
    const gen = this.eventGen;
    try {
      const prefs = await this.client.updatePreferences({ categories: { [category]: { [channel]: on } } });
      this.pending.delete(key);
      if (this.eventGen === gen) this.apply(prefs);
      else this.emit();
    } catch (err) {
      this.pending.delete(key);
      if (before && this.eventGen === gen) this.categories.set(category, before);
      const status = err instanceof HeraldError ? err.status : 0;
      const named = err instanceof HeraldError ? err.problem?.errors?.find((e) => e.field === `categories.${category}`) : undefined;
      const message = named ? `${named.field}: ${named.message}` : err instanceof Error ? err.message : String(err);
      this.emit({ refused: { category, channel, message, status } });
      void this.refresh();
      throw err;
    }
  }
}
