/**
 * `HeraldStream`: live events for a page, over ONE `EventSource` per browser
 * rather than per tab.
 *
 * Over HTTP/1.1 a browser opens at most six connections per host; an app that
 * opens an `EventSource` in every tab hangs in its seventh. So the tabs of an
 * origin elect a leader with the Web Locks API (`navigator.locks`): the tab
 * holding the lock owns the one stream (a `Connection`) and relays every frame
 * to the others over a `BroadcastChannel`. When the leader's tab closes, the
 * browser releases its lock and hands it to the next waiting tab, which asks
 * the others for the highest position any of them saw and resumes the stream
 * from there (`last_event_id`). Every tab drops events at or below the last
 * `seq` it delivered, so nothing is shown twice across the handover, and the
 * gateway's replay means nothing is lost. A `herald.reset` moves that mark to
 * the reset's position, also down (a history that went backwards).
 *
 * Why not a `SharedWorker`: its script must be served from the page's own
 * origin at a stable URL (an extra file for every app to host), and Chrome on
 * Android has none. Without Web Locks or `BroadcastChannel` (old browsers,
 * plain-http pages off localhost), or with `share: false`, each tab streams on
 * its own.
 *
 * The tabs' wishes are merged: the leader's stream carries the union of every
 * tab's topics and listens for the union of their event types; each tab is
 * given only the events of its own topics.
 */
import type { Envelope } from './client.js';
import {
  Connection,
  type ResyncReason,
  type StreamStatus,
  type StreamTokenSource,
} from './connection.js';

export type { ResyncReason, StreamStatus, StreamTokenAnswer, StreamTokenSource } from './connection.js';

export type StreamRole = 'idle' | 'solo' | 'leader' | 'follower';

export interface HeraldStreamOptions {
  /** The gateway's base URL (it serves `GET /v1/stream`). */
  url: string;
  /** Mints stream tokens; e.g. `(topics) => client.createStreamToken(topics)`. */
  getToken: StreamTokenSource;
  /** Topics beyond the user's own (`feed:team-42`, `order:A-1001`). */
  topics?: string[];
  /** Follow the user's own topics (what a token for `{}` carries). Default true. */
  own?: boolean;
  /** Share one stream among the tabs of this origin. Default true where the browser can. */
  share?: boolean;
  /**
   * Tabs with the same key share a stream. Default: the gateway URL. Give the
   * user's id too when one origin may show different users in different tabs.
   */
  key?: string;
}

type Handler = (envelope: Envelope) => void;
type ResyncHandler = (reason: ResyncReason) => void;
type StateHandler = (status: StreamStatus) => void;

/** Messages between the tabs (one BroadcastChannel per key). */
type TabMessage =
  | { t: 'hello'; tab: string; topics: string[]; own: boolean; types: string[]; seq: number }
  | { t: 'elect'; tab: string }
  | { t: 'state'; tab: string; status: StreamStatus; openTopics: string[]; ownTopics: string[] | null }
  | { t: 'event'; seq: number; type: string; env: Envelope }
  | { t: 'pos'; seq: number }
  | { t: 'resync'; reason: ResyncReason; topics: string[]; at?: number }
  | { t: 'refused'; topics: string[] }
  | { t: 'fatal'; status: number | null; message: string };

/** How long a new leader waits for the other tabs' positions and wishes. */
const ELECTION_WAIT_MS = 120;

function randomId(): string {
  const c = (globalThis as { crypto?: Crypto }).crypto;
  if (c && typeof c.randomUUID === 'function') return c.randomUUID();
  return Math.random().toString(36).slice(2) + Date.now().toString(36);
}

function canShare(): boolean {
  return typeof BroadcastChannel === 'function' &&
    typeof navigator !== 'undefined' &&
    !!(navigator as Navigator & { locks?: LockManager }).locks;
}

export class HeraldStream {
  readonly tab = randomId();
  private readonly url: string;
  private readonly getToken: StreamTokenSource;
  private readonly own: boolean;
  private readonly share: boolean;
  private readonly key: string;

  private readonly topics = new Set<string>();
  private readonly handlers = new Map<string, Set<Handler>>();
  private readonly resyncs = new Map<string | null, Set<ResyncHandler>>();
  private readonly refusedHooks = new Map<string, () => void>();
  private readonly stateListeners = new Set<StateHandler>();
  private readonly errorListeners = new Set<(error: unknown) => void>();

  private _role: StreamRole = 'idle';
  private _status: StreamStatus = 'connecting';
  private openTopics: string[] = [];
  private ownTopics: string[] | null = null;
  /** The highest `seq` this tab delivered or saw: events at or below it are dropped. */
  private _lastSeq = 0;

  private conn: Connection | null = null;
  private channel: BroadcastChannel | null = null;
  private releaseLock: (() => void) | null = null;
  private lockAbort: AbortController | null = null;
  private greeted = false;
  private closed = false;
  private started = false;
  /** While leading: what the other tabs asked for. */
  private readonly peerTopics = new Set<string>();
  private peerOwn = false;
  private readonly peerTypes = new Set<string>();
  private election: { seq: number } | null = null;
  private readonly onPageHide = () => {
    if (this._role === 'leader') this.post({ t: 'state', tab: this.tab, status: 'reconnecting', openTopics: [], ownTopics: this.ownTopics });
  };

  constructor(options: HeraldStreamOptions) {
    if (!options || !options.url) throw new TypeError('HeraldStream: url is required');
    if (typeof options.getToken !== 'function') throw new TypeError('HeraldStream: getToken is required');
    this.url = options.url.replace(/\/+$/, '');
    this.getToken = options.getToken;
    this.own = options.own !== false;
    this.share = options.share !== false && canShare();
    this.key = options.key || this.url;
    for (const t of options.topics || []) if (t) this.topics.add(t);
  }

  /** `solo`, `leader` (this tab holds the stream) or `follower` (fed by the leader). */
  get role(): StreamRole {
    return this._role;
  }

  get status(): StreamStatus {
    return this._status;
  }

  /** The highest event position this tab has seen. */
  get lastSeq(): number {
    return this._lastSeq;
  }

  /** True when the stream is live and carries `topic`. */
  isLive(topic: string): boolean {
    return this._status === 'live' && this.openTopics.includes(topic);
  }

  /** Calls `fn(envelope)` for every event of `type` on this tab's topics, once, in `seq` order. */
  on(type: string, fn: Handler): () => void {
    let set = this.handlers.get(type);
    if (!set) {
      set = new Set();
      this.handlers.set(type, set);
      this.conn?.addType(type);
      if (this._role === 'follower') this.hello();
    }
    set.add(fn);
    return () => set?.delete(fn);
  }

  /**
   * Calls `fn(reason)` when the state of `topic` (null: the user's own
   * topics) must be refetched over REST: the stream could not prove it saw
   * everything (`open`), or the gateway sent `herald.reset` (`reset`).
   */
  onResync(topic: string | null, fn: ResyncHandler): () => void {
    let set = this.resyncs.get(topic);
    if (!set) {
      set = new Set();
      this.resyncs.set(topic, set);
    }
    set.add(fn);
    return () => set?.delete(fn);
  }

  /** Calls `fn(status)` on every change of the status or of the open topics. */
  onState(fn: StateHandler): () => void {
    this.stateListeners.add(fn);
    return () => this.stateListeners.delete(fn);
  }

  /** Calls `fn(error)` when stream tokens are refused for the user's own topics (401/403). */
  onError(fn: (error: unknown) => void): () => void {
    this.errorListeners.add(fn);
    return () => this.errorListeners.delete(fn);
  }

  /** Follows one more topic. `onRefused` runs if the API will not grant it. */
  addTopic(topic: string, options: { onRefused?: () => void } = {}): void {
    if (!topic || this.topics.has(topic)) return;
    this.topics.add(topic);
    if (options.onRefused) this.refusedHooks.set(topic, options.onRefused);
    if (this._role === 'leader' || this._role === 'solo') this.conn?.addTopics([topic]);
    else if (this._role === 'follower') this.hello();
  }

  /** Starts streaming (idempotent). */
  start(): void {
    if (this.started || this.closed) return;
    this.started = true;
    if (!this.share) {
      this._role = 'solo';
      this.lead();
      return;
    }
    this._role = 'follower';
    this.channel = new BroadcastChannel('herald:' + this.key);
    this.channel.onmessage = (e: MessageEvent<TabMessage>) => this.onMessage(e.data);
    this.hello();
    this.lockAbort = new AbortController();
    const locks = (navigator as Navigator & { locks: LockManager }).locks;
    locks
      .request('herald-leader:' + this.key, { signal: this.lockAbort.signal }, () =>
        new Promise<void>((resolve) => {
          if (this.closed) return resolve();
          this.releaseLock = resolve;
          this.lead();
        }))
      .catch(() => { /* aborted by close() */ });
    window.addEventListener('pagehide', this.onPageHide);
  }

  /** Stops streaming; a leader hands the stream to the next tab. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this._role === 'leader') this.onPageHide();
    this.conn?.close();
    this.conn = null;
    this.lockAbort?.abort();
    this.releaseLock?.();
    this.channel?.close();
    this.channel = null;
    if (typeof window !== 'undefined') window.removeEventListener('pagehide', this.onPageHide);
    this._role = 'idle';
  }

  // ------------------------------------------------------------- delivery (every role)

  private wants(topic: string): boolean {
    if (this.topics.has(topic)) return true;
    if (!this.own) return false;
    return this.ownTopics === null ? !this.peerTopics.has(topic) : this.ownTopics.includes(topic);
  }

  private deliver(seq: number, type: string, env: Envelope): void {
    if (Number.isSafeInteger(seq)) {
      if (seq <= this._lastSeq) return; // already delivered (a handover or a replay)
      this._lastSeq = seq;
    }
    if (!env || typeof env.topic !== 'string' || !this.wants(env.topic)) return;
    for (const fn of this.handlers.get(type) || []) {
      try {
        fn(env);
      } catch (err) {
        console.error(err);
      }
    }
  }

  private position(seq: number): void {
    if (seq > this._lastSeq) this._lastSeq = seq;
  }

  /**
   * `herald.reset` at `seq`: the stream starts over there, so what follows is
   * delivered even at positions this tab saw before (a rewound history reuses
   * them; dropping them as duplicates would lose them).
   */
  private rewind(seq: number): void {
    this._lastSeq = seq;
    if (this.election) this.election.seq = seq;
  }

  private resyncLocal(reason: ResyncReason, topics: string[] | 'all'): void {
    for (const [topic, fns] of this.resyncs) {
      const hit = topics === 'all'
        ? topic === null || this.topics.has(topic)
        : topic === null
          ? this.own && topics.some((t) => this.ownTopics === null || this.ownTopics.includes(t))
          : topics.includes(topic);
      if (!hit) continue;
      for (const fn of fns) {
        try {
          fn(reason);
        } catch (err) {
          console.error(err);
        }
      }
    }
  }

  private setState(status: StreamStatus, openTopics: string[], ownTopics: string[] | null): void {
    this._status = status;
    this.openTopics = openTopics.slice();
    if (ownTopics) this.ownTopics = ownTopics.slice();
    for (const fn of this.stateListeners) {
      try {
        fn(status);
      } catch (err) {
        console.error(err);
      }
    }
  }

  private refusedLocal(topics: string[]): void {
    for (const t of topics) {
      if (!this.topics.delete(t)) continue;
      const hook = this.refusedHooks.get(t);
      this.refusedHooks.delete(t);
      try {
        hook?.();
      } catch (err) {
        console.error(err);
      }
    }
  }

  private fatalLocal(error: unknown): void {
    for (const fn of this.errorListeners) {
      try {
        fn(error);
      } catch (err) {
        console.error(err);
      }
    }
  }

  // ------------------------------------------------------------- leading

  private post(msg: TabMessage): void {
    try {
      this.channel?.postMessage(msg);
    } catch {
      /* the channel is closed */
    }
  }

  private hello(): void {
    this.post({
      t: 'hello',
      tab: this.tab,
      topics: Array.from(this.topics),
      own: this.own,
      types: Array.from(this.handlers.keys()),
      seq: this._lastSeq,
    });
  }

  /** This tab now owns the stream: gather the other tabs' wishes and positions, then open it. */
  private lead(): void {
    if (this.closed) return;
    const solo = this._role === 'solo';
    this._role = solo ? 'solo' : 'leader';
    if (solo) {
      this.openConnection(this.openTopics);
      return;
    }
    const covered = this.openTopics; // what the previous leader's stream carried
    this.election = { seq: this._lastSeq };
    this.post({ t: 'elect', tab: this.tab });
    setTimeout(() => {
      if (this.closed || !this.election) return;
      this.position(this.election.seq);
      this.election = null;
      this.openConnection(covered);
    }, ELECTION_WAIT_MS);
  }

  private openConnection(covered: string[]): void {
    const conn = new Connection(this.url, this.getToken, this.own || this.peerOwn, {
      event: (type, env, seq) => {
        this.post({ t: 'event', seq, type, env });
        this.deliver(seq, type, env);
      },
      position: (seq) => {
        this.post({ t: 'pos', seq });
        this.position(seq);
      },
      resync: (reason, topics, at) => {
        this.post({ t: 'resync', reason, topics, at });
        if (at !== undefined) this.rewind(at);
        this.resyncLocal(reason, topics);
      },
      status: (status, openTopics, ownTopics) => {
        this.post({ t: 'state', tab: this.tab, status, openTopics, ownTopics });
        this.setState(status, openTopics, ownTopics);
      },
      refused: (topics) => {
        this.post({ t: 'refused', topics });
        this.refusedLocal(topics);
      },
      fatal: (error) => {
        const e = error as { status?: number; message?: string };
        this.post({ t: 'fatal', status: typeof e?.status === 'number' ? e.status : null, message: String(e?.message || error) });
        this.fatalLocal(error);
      },
    });
    // Resume from the highest position any tab saw; the topics the previous
    // leader carried need no refetch.
    if (this._lastSeq > 0) {
      conn.lastEventId = String(this._lastSeq);
      conn.covered = new Set(covered);
    }
    if (this.ownTopics) conn.ownTopics = this.ownTopics.slice();
    for (const type of this.handlers.keys()) conn.addType(type);
    for (const type of this.peerTypes) conn.addType(type);
    conn.addTopics([...this.topics, ...this.peerTopics]);
    this.conn = conn;
    conn.start();
  }

  private onMessage(msg: TabMessage): void {
    if (this.closed || !msg || typeof msg !== 'object') return;
    switch (msg.t) {
      case 'hello':
        this.peerTypesAndTopics(msg);
        if (this.election && msg.seq > this.election.seq) this.election.seq = msg.seq;
        if (this._role === 'leader' && this.conn) {
          this.post({ t: 'state', tab: this.tab, status: this.conn.status, openTopics: this.conn.openTopics, ownTopics: this.conn.ownTopics });
        }
        break;
      case 'elect':
        if (this._role === 'follower') this.hello();
        break;
      case 'state':
        if (this._role !== 'follower') break;
        this.setState(msg.status, msg.openTopics, msg.ownTopics);
        if (!this.greeted) {
          // A leader exists and streams for us from now on: what happened
          // before this tab joined comes over REST.
          this.greeted = true;
          this.resyncLocal('open', 'all');
        }
        break;
      case 'event':
        if (this._role === 'follower' || this.election) this.deliver(msg.seq, msg.type, msg.env);
        break;
      case 'pos':
        this.position(msg.seq);
        break;
      case 'resync':
        if (this._role !== 'follower' && !this.election) break;
        if (typeof msg.at === 'number' && Number.isSafeInteger(msg.at)) this.rewind(msg.at);
        if (this._role === 'follower') this.resyncLocal(msg.reason, msg.topics);
        break;
      case 'refused':
        this.refusedLocal(msg.topics);
        break;
      case 'fatal':
        if (this._role === 'follower') {
          const error = Object.assign(new Error(msg.message), { status: msg.status });
          this.fatalLocal(error);
        }
        break;
    }
  }

  private peerTypesAndTopics(msg: Extract<TabMessage, { t: 'hello' }>): void {
    for (const t of msg.types) {
      if (this.peerTypes.has(t)) continue;
      this.peerTypes.add(t);
      this.conn?.addType(t);
    }
    const fresh = msg.topics.filter((t) => !this.peerTopics.has(t));
    for (const t of fresh) this.peerTopics.add(t);
    const own = msg.own && !this.peerOwn;
    if (msg.own) this.peerOwn = true;
    if (this.conn && (fresh.length || own)) this.conn.addTopics(fresh, own);
  }
}
