/**
 * One `EventSource` to the gateway, owned by the tab that leads (or by a tab
 * that does not share): the hard-won logic of the first demo page, as a class.
 *
 * - Opening: a stream token from the caller's `getToken(topics)` (the API's
 *   `POST /v1/stream-tokens`), then `GET /v1/stream?access_token=…`, with
 *   `&last_event_id=` when a position is known, so nothing is missed.
 * - The position: every frame's `lastEventId` (the envelope's `seq`) is kept;
 *   a stream we open ourselves (reauth, new topics, the browser gave up on a
 *   non-200) resumes from it.
 * - Resync: a stream opened without a position, a `herald.reset`, or a topic
 *   the previous stream did not carry cannot prove it saw everything; the
 *   owners of those topics are told to refetch over REST.
 * - `herald.reauth`: the token is about to expire; reopen with a fresh one.
 * - `error` while CONNECTING: the browser retries by itself with
 *   `Last-Event-ID`. `error` with CLOSED: reconnect ourselves, with backoff.
 */
import type { Envelope } from './client.js';

export type StreamStatus = 'connecting' | 'live' | 'reconnecting' | 'offline';
export type ResyncReason = 'open' | 'reset';

/** What `getToken` may answer: the API's `StreamToken`, or just the token. */
export type StreamTokenAnswer = string | { token: string; topics?: string[] };
/**
 * Mints a stream token for `topics`, or, for `null`, for the caller's own
 * topics (the API's `POST /v1/stream-tokens` with `{}`).
 */
export type StreamTokenSource = (topics: string[] | null) => Promise<StreamTokenAnswer>;

export interface ConnectionEvents {
  event(type: string, envelope: Envelope, seq: number): void;
  position(seq: number): void;
  /**
   * Topics whose state must be refetched. For `reset`, `at` is the position the
   * stream restarts from: events after it are new even where their positions were
   * seen before (a history that went backwards reuses them).
   */
  resync(reason: ResyncReason, topics: string[], at?: number): void;
  status(status: StreamStatus, openTopics: string[], ownTopics: string[] | null): void;
  /** Topics the API would not put in a stream token (403). */
  refused(topics: string[]): void;
  /** The token source failed for good (401/403 on the user's own topics). */
  fatal(error: unknown): void;
}

interface HttpLikeError {
  status?: number;
  problem?: { detail?: string | null } | null;
  message?: string;
}

const RECONNECT_FIRST_MS = 1000;
const RECONNECT_MAX_MS = 5000;

export class Connection {
  lastEventId: string | null = null;
  /** Topics the current position is valid for. */
  covered = new Set<string>();
  ownTopics: string[] | null = null;
  status: StreamStatus = 'connecting';
  openTopics: string[] = [];

  private readonly extras = new Set<string>();
  private readonly refusedTopics = new Set<string>();
  private readonly types = new Set<string>();
  private es: EventSource | null = null;
  private gen = 0;
  private attempts = 0;
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private reopenQueued = false;
  /** The open EventSource has seen an id: the browser can resume it by itself. */
  private sawId = false;
  private started = false;
  private closed = false;
  private fatal = false;
  private readonly onOnline = () => this.wake();
  private readonly onVisible = () => {
    if (document.visibilityState === 'visible') this.wake();
  };

  constructor(
    private readonly url: string,
    private readonly getToken: StreamTokenSource,
    private wantOwn: boolean,
    private readonly on: ConnectionEvents,
  ) {}

  /** Adds topics (beyond the user's own); an open stream is reopened with them. */
  addTopics(topics: Iterable<string>, own = false): void {
    let changed = false;
    if (own && !this.wantOwn) {
      this.wantOwn = true;
      changed = true;
    }
    for (const t of topics) {
      if (!t || this.extras.has(t) || this.refusedTopics.has(t) || this.ownTopics?.includes(t)) continue;
      this.extras.add(t);
      changed = true;
    }
    if (changed) this.reopenSoon();
  }

  /** Listens for one more event type (no reconnect needed). */
  addType(type: string): void {
    if (this.types.has(type)) return;
    this.types.add(type);
    if (this.es) this.listen(this.es, type);
  }

  start(): void {
    if (this.started || this.closed) return;
    this.started = true;
    if (typeof window !== 'undefined') {
      window.addEventListener('online', this.onOnline);
      document.addEventListener('visibilitychange', this.onVisible);
    }
    void this.connect();
  }

  close(): void {
    this.closed = true;
    this.gen++;
    clearTimeout(this.reconnectTimer);
    this.closeStream();
    if (typeof window !== 'undefined') {
      window.removeEventListener('online', this.onOnline);
      document.removeEventListener('visibilitychange', this.onVisible);
    }
  }

  private wake(): void {
    if (this.started && !this.closed && !this.fatal && !this.es) void this.connect();
  }

  private setStatus(status: StreamStatus): void {
    this.status = status;
    this.on.status(status, this.openTopics, this.ownTopics);
  }

  private closeStream(): void {
    if (this.es) {
      this.es.close();
      this.es = null;
    }
    this.openTopics = [];
  }

  private scheduleReconnect(): void {
    if (this.closed || this.fatal) return;
    clearTimeout(this.reconnectTimer);
    // 1 s first, then a little longer each time (capped), with jitter so that
    // the clients of a restarted gateway do not all come back in lockstep.
    const delay = this.attempts === 0
      ? RECONNECT_FIRST_MS
      : Math.min(RECONNECT_FIRST_MS * (this.attempts + 1), RECONNECT_MAX_MS) + Math.random() * 300;
    this.attempts++;
    this.reconnectTimer = setTimeout(() => void this.connect(), delay);
  }

  private reopenSoon(): void {
    if (!this.started || this.closed || this.reopenQueued) return;
    this.reopenQueued = true;
    setTimeout(() => {
      this.reopenQueued = false;
      if (!this.closed && !this.fatal) void this.connect();
    }, 0);
  }

  /**
   * Records a frame's position. Events report theirs with the event itself,
   * `herald.reset` with the resync; the bare `id: <head>` frame as a position.
   */
  private track(e: MessageEvent, report = false): void {
    if (!e.lastEventId) return;
    this.sawId = true;
    this.lastEventId = e.lastEventId;
    const seq = Number(e.lastEventId);
    if (report && Number.isSafeInteger(seq)) this.on.position(seq);
  }

  private listen(es: EventSource, type: string): void {
    es.addEventListener(type, (ev) => {
      if (es !== this.es) return;
      const e = ev as MessageEvent;
      this.track(e);
      let env: Envelope;
      try {
        env = JSON.parse(e.data) as Envelope;
      } catch {
        return;
      }
      const seq = Number(e.lastEventId || env.seq);
      this.on.event(type, env, seq);
    });
  }

  private async mint(): Promise<{ token: string; topics: string[] }> {
    const extras = Array.from(this.extras);
    const normalize = (answer: StreamTokenAnswer, asked: string[] | null) =>
      typeof answer === 'string'
        ? { token: answer, topics: asked ?? this.ownTopics ?? [] }
        : { token: answer.token, topics: Array.isArray(answer.topics) ? answer.topics : asked ?? [] };
    if (!extras.length) {
      const t = normalize(await this.getToken(null), null);
      this.ownTopics = t.topics;
      return t;
    }
    if (this.wantOwn && !this.ownTopics) {
      // The names of the user's own topics are the API's to say: ask once.
      this.ownTopics = normalize(await this.getToken(null), null).topics;
    }
    const asked = this.wantOwn ? Array.from(new Set([...(this.ownTopics ?? []), ...extras])) : extras;
    return normalize(await this.getToken(asked), asked);
  }

  private refuse(error: HttpLikeError): void {
    // "this token may not read `feed:x`": drop that one; otherwise all extras.
    const named = /`([^`]+)`/.exec(error.problem?.detail ?? error.message ?? '')?.[1];
    const topics = named && this.extras.has(named) ? [named] : Array.from(this.extras);
    for (const t of topics) {
      this.extras.delete(t);
      this.refusedTopics.add(t);
    }
    this.on.refused(topics);
  }

  private async connect(): Promise<void> {
    if (this.closed || this.fatal) return;
    clearTimeout(this.reconnectTimer);
    const gen = ++this.gen;
    this.closeStream();
    if (!this.wantOwn && this.extras.size === 0) {
      this.setStatus('offline'); // nothing to follow
      return;
    }

    let token: { token: string; topics: string[] };
    try {
      token = await this.mint();
    } catch (err) {
      if (gen !== this.gen || this.closed) return;
      const e = err as HttpLikeError;
      if (e && e.status === 403 && this.extras.size) {
        this.refuse(e);
        void this.connect();
        return;
      }
      if (e && (e.status === 401 || e.status === 403)) {
        this.fatal = true;
        this.setStatus('offline');
        this.on.fatal(err);
        return;
      }
      this.setStatus('reconnecting');
      this.scheduleReconnect();
      return;
    }
    if (gen !== this.gen || this.closed) return;

    const streamTopics = token.topics;
    const resumeFrom = this.lastEventId;
    const covered = this.covered;
    let url = this.url.replace(/\/+$/, '') + '/v1/stream?access_token=' + encodeURIComponent(token.token);
    if (resumeFrom) url += '&last_event_id=' + encodeURIComponent(resumeFrom);
    const es = new EventSource(url);
    this.sawId = false;
    let opened = false;
    this.es = es;

    es.addEventListener('open', () => {
      if (es !== this.es) return;
      this.attempts = 0;
      this.openTopics = streamTopics;
      const first = !opened;
      opened = true;
      this.setStatus('live');
      if (first) {
        this.covered = new Set(streamTopics);
        if (!resumeFrom) {
          // No position: whatever happened before this stream comes over REST.
          this.on.resync('open', streamTopics);
        } else {
          // Resumed: only topics the previous stream did not carry may have a gap.
          const fresh = streamTopics.filter((t) => !covered.has(t));
          if (fresh.length) this.on.resync('open', fresh);
        }
      } else if (!this.sawId) {
        // The browser reopened it by itself, with no Last-Event-ID to send.
        this.on.resync('open', streamTopics);
      }
    });
    es.addEventListener('error', () => {
      if (es !== this.es) return;
      if (es.readyState === EventSource.CLOSED) {
        // The browser gave up (a non-200: an expired token, a gateway still
        // starting): reconnect ourselves with a fresh token.
        this.closeStream();
        this.setStatus('reconnecting');
        this.scheduleReconnect();
      } else {
        this.openTopics = [];
        this.setStatus('reconnecting');
      }
    });
    for (const type of this.types) this.listen(es, type);
    es.addEventListener('message', (ev) => {
      if (es === this.es) this.track(ev as MessageEvent, true); // the bare `id: <head>` frame
    });
    es.addEventListener('herald.reset', (ev) => {
      if (es !== this.es) return;
      // The history we knew is gone (a position ahead of the gateway's head, one it
      // pruned, or a rewound log): the stream restarts at the reset's position, which
      // may be below what we saw, and the state is refetched.
      const e = ev as MessageEvent;
      this.track(e);
      const at = Number(e.lastEventId);
      this.on.resync('reset', streamTopics, Number.isSafeInteger(at) ? at : undefined);
    });
    es.addEventListener('herald.reauth', () => {
      if (es === this.es) void this.connect();
    });
  }
}
