/**
 * The REST client: every call is typed by `paths`, generated from Herald's
 * `openapi/openapi.json` (see `src/generated/schema.ts`; `npm run generate`
 * rewrites it and the test suite fails when it is stale). `request()` takes
 * any documented path; the named methods cover what a browser app needs.
 *
 * Errors are `HeraldError` carrying the problem+json document. Zero runtime
 * dependencies: it is `fetch` and a few lines.
 */
import type { components, paths } from './generated/schema.js';

export type { components, paths };
export type Schemas = components['schemas'];
export type Notification = Schemas['Notification'];
export type NotificationPage = Schemas['NotificationPage'];
export type Counts = Schemas['Counts'];
export type Envelope = Schemas['Envelope'];
export type Problem = Schemas['Problem'];
export type StreamToken = Schemas['StreamToken'];
export type Order = Schemas['Order'];
export type OrderStatus = Schemas['OrderStatus'];
export type Activity = Schemas['Activity'];
export type ActivityPage = Schemas['ActivityPage'];
export type EventPage = Schemas['EventPage'];
export type Preferences = Schemas['Preferences'];
export type PreferencesChange = Schemas['PreferencesChange'];
export type CategoryPreference = Schemas['CategoryPreference'];
export type ChannelChoice = Schemas['ChannelChoice'];
export type NewPushSubscription = Schemas['NewPushSubscription'];
export type PushSubscriptionInfo = Schemas['PushSubscriptionInfo'];
export type PushSubscriptionList = Schemas['PushSubscriptionList'];
export type VapidPublicKey = Schemas['VapidPublicKey'];
/** A notification channel a user can turn on or off per category. */
export type Channel = 'in_app' | 'web_push';

export type Method = 'get' | 'post' | 'put' | 'delete';

/** The paths that have an operation for `M`. */
export type PathsWith<M extends Method> = {
  [P in keyof paths]: paths[P][M] extends undefined ? never : P;
}[keyof paths];

type Operation<P extends keyof paths, M extends Method> = NonNullable<paths[P][M]>;
type JsonContent<R> = R extends { content: { 'application/json': infer J } } ? J : never;
type SuccessStatus = 200 | 201 | 202;

/** The JSON body of an operation's successful answers. */
export type SuccessOf<O> = O extends { responses: infer R }
  ? JsonContent<R[Extract<keyof R, SuccessStatus>]>
  : never;
/** The JSON request body of an operation (`never` when it takes none). */
export type BodyOf<O> = O extends { requestBody?: infer B } ? JsonContent<NonNullable<B>> : never;
type QueryOf<O> = O extends { parameters: { query?: infer Q } } ? Q : never;
type PathParamsOf<O> = O extends { parameters: { path: infer P } } ? P : never;

/** What `request()` takes: path parameters are required where the template has them. */
export type RequestOptions<P extends keyof paths, M extends Method> = {
  query?: QueryOf<Operation<P, M>>;
  headers?: Record<string, string>;
  signal?: AbortSignal;
} & (P extends `${string}{${string}}${string}`
  ? { path: PathParamsOf<Operation<P, M>> }
  : { path?: never }) &
  ([BodyOf<Operation<P, M>>] extends [never] ? { body?: never } : { body: BodyOf<Operation<P, M>> });

/** A refused request: the HTTP status and the problem+json document, when there is one. */
export class HeraldError extends Error {
  readonly status: number;
  readonly problem: Problem | null;
  /** Seconds from `Retry-After` (429, 503), or null. */
  readonly retryAfter: number | null;

  constructor(status: number, problem: Problem | null, retryAfter: number | null) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.name = 'HeraldError';
    this.status = status;
    this.problem = problem;
    this.retryAfter = retryAfter;
  }
}

/** A user token (JWT), or a function that returns the current one. */
export type TokenSource = string | (() => string | null | undefined | Promise<string | null | undefined>);

export interface HeraldClientOptions {
  /** The API's base URL, e.g. `https://notify.example.com`. */
  baseUrl: string;
  /** The caller's access token, sent as `Authorization: Bearer …` (never in a URL). */
  token?: TokenSource;
  /** Called once per 401 answer (the token expired or was refused). */
  onUnauthorized?: (error: HeraldError) => void;
  /** A `fetch` implementation (default: the global one). */
  fetch?: typeof fetch;
}

/** `all` is read and unread: neither archived nor snoozed. */
export type NotificationStatus = 'unread' | 'read' | 'archived' | 'snoozed' | 'all';

export class HeraldClient {
  readonly baseUrl: string;
  private readonly token: TokenSource | undefined;
  private readonly onUnauthorized: ((e: HeraldError) => void) | undefined;
  private readonly fetchImpl: typeof fetch;

  constructor(options: HeraldClientOptions) {
    if (!options || typeof options.baseUrl !== 'string' || !options.baseUrl) {
      throw new TypeError('HeraldClient: baseUrl is required');
    }
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.token = options.token;
    this.onUnauthorized = options.onUnauthorized;
    this.fetchImpl = options.fetch ?? ((input, init) => fetch(input, init));
  }

  /**
   * Calls any documented operation. Path parameters are substituted (and
   * escaped), `query` becomes the query string, `body` is sent as JSON.
   * Resolves with the parsed JSON answer; rejects with `HeraldError`.
   */
  async request<P extends PathsWith<M>, M extends Method>(
    method: M,
    path: P,
    ...[options]: RequestOptions<P, M> extends { path: unknown } | { body: unknown }
      ? [RequestOptions<P, M>]
      : [RequestOptions<P, M>?]
  ): Promise<SuccessOf<Operation<P, M>>> {
    const opts = (options ?? {}) as {
      query?: Record<string, unknown>;
      path?: Record<string, unknown>;
      body?: unknown;
      headers?: Record<string, string>;
      signal?: AbortSignal;
    };
    let url = this.baseUrl + String(path).replace(/\{([^}]+)\}/g, (_, name: string) => {
      const v = opts.path?.[name];
      if (v === undefined || v === null) throw new TypeError(`HeraldClient: path parameter ${name} is required`);
      return encodeURIComponent(String(v));
    });
    if (opts.query) {
      const q = new URLSearchParams();
      for (const [k, v] of Object.entries(opts.query)) if (v !== undefined && v !== null) q.set(k, String(v));
      const s = q.toString();
      if (s) url += '?' + s;
    }
    const headers: Record<string, string> = { Accept: 'application/json, application/problem+json', ...opts.headers };
    const token = await this.currentToken();
    if (token) headers.Authorization = `Bearer ${token}`;
    const init: RequestInit = { method: method.toUpperCase(), headers, cache: 'no-store', signal: opts.signal };
    if (method !== 'get') {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(opts.body === undefined ? {} : opts.body);
    }
    const res = await this.fetchImpl(url, init);
    if (!res.ok) {
      let problem: Problem | null = null;
      try {
        problem = (await res.json()) as Problem;
      } catch {
        /* not JSON */
      }
      const ra = Number(res.headers.get('retry-after'));
      const error = new HeraldError(res.status, problem, Number.isFinite(ra) && ra >= 0 && res.headers.has('retry-after') ? ra : null);
      if (res.status === 401 && this.onUnauthorized) this.onUnauthorized(error);
      throw error;
    }
    if (res.status === 204) return null as SuccessOf<Operation<P, M>>;
    return (await res.json()) as SuccessOf<Operation<P, M>>;
  }

  private async currentToken(): Promise<string | null> {
    const t = this.token;
    if (!t) return null;
    const v = typeof t === 'function' ? await t() : t;
    return v || null;
  }

  // ------------------------------------------------------------- inbox

  /** `GET /v1/me/notifications`: one page of the inbox, newest first. */
  listNotifications(query: { status?: NotificationStatus; category?: string; limit?: number; cursor?: string | null } = {}): Promise<NotificationPage> {
    const { cursor, ...rest } = query;
    return this.request('get', '/v1/me/notifications', { query: { ...rest, ...(cursor ? { cursor } : {}) } });
  }

  /** `GET /v1/me/notifications/counts`: `{unread, unseen, total}`, exact. */
  counts(): Promise<Counts> {
    return this.request('get', '/v1/me/notifications/counts');
  }

  markRead(id: string): Promise<Notification> {
    return this.request('post', '/v1/me/notifications/{id}/read', { path: { id } });
  }

  markUnread(id: string): Promise<Notification> {
    return this.request('post', '/v1/me/notifications/{id}/unread', { path: { id } });
  }

  archive(id: string): Promise<Notification> {
    return this.request('post', '/v1/me/notifications/{id}/archive', { path: { id } });
  }

  /**
   * `POST /v1/me/notifications/{id}/snooze`: out of every list (but `status=snoozed`)
   * and the counts until `until`, when it comes back unread at the top. `until` must
   * be in the future and at most 30 days ahead (else a 422 `HeraldError`).
   */
  snooze(id: string, until: Date | string): Promise<Notification> {
    return this.request('post', '/v1/me/notifications/{id}/snooze', {
      path: { id },
      body: { until: typeof until === 'string' ? until : until.toISOString() },
    });
  }

  /** `POST /v1/me/notifications/{id}/unsnooze`: back now, unread at the top. */
  unsnooze(id: string): Promise<Notification> {
    return this.request('post', '/v1/me/notifications/{id}/unsnooze', { path: { id } });
  }

  /** `POST /v1/me/notifications/read-all`: the new counts. */
  readAll(): Promise<Counts> {
    return this.request('post', '/v1/me/notifications/read-all');
  }

  /** `POST /v1/me/notifications/seen`: the new counts. */
  seen(): Promise<Counts> {
    return this.request('post', '/v1/me/notifications/seen');
  }

  // ------------------------------------------------------------- preferences

  /** `GET /v1/me/preferences`: every category with defaults or a choice of the user's, with what reaches them. */
  preferences(): Promise<Preferences> {
    return this.request('get', '/v1/me/preferences');
  }

  /**
   * `PUT /v1/me/preferences`: changes the listed categories only (a channel
   * `null` or left out follows the category's default again). Resolves with
   * every category after the change; a required category muted is a 422
   * `HeraldError` naming `categories.{category}`, and nothing is changed.
   */
  updatePreferences(change: PreferencesChange): Promise<Preferences> {
    return this.request('put', '/v1/me/preferences', { body: change });
  }

  // ------------------------------------------------------------- Web Push

  /** `GET /v1/push/vapid-public-key`: the `applicationServerKey` for `pushManager.subscribe` (404 when the server has no Web Push). */
  vapidPublicKey(): Promise<VapidPublicKey> {
    return this.request('get', '/v1/push/vapid-public-key');
  }

  /** `GET /v1/me/push-subscriptions`: the user's subscribed browsers, oldest first. */
  listPushSubscriptions(): Promise<PushSubscriptionList> {
    return this.request('get', '/v1/me/push-subscriptions');
  }

  /** `POST /v1/me/push-subscriptions` with exactly `PushSubscription.toJSON()`. */
  addPushSubscription(subscription: NewPushSubscription): Promise<PushSubscriptionInfo> {
    return this.request('post', '/v1/me/push-subscriptions', { body: subscription });
  }

  /** `DELETE /v1/me/push-subscriptions`: forgets one endpoint of the user's (idempotent). */
  async removePushSubscription(endpoint: string): Promise<void> {
    await this.request('delete', '/v1/me/push-subscriptions', { body: { endpoint } });
  }

  // ------------------------------------------------------------- streams, history, feeds, orders

  /**
   * `POST /v1/stream-tokens`: a short-lived token for `GET /v1/stream?access_token=`.
   * Without topics it carries the caller's own `user:{sub}`.
   */
  createStreamToken(topics?: string[] | null): Promise<StreamToken> {
    return this.request('post', '/v1/stream-tokens', { body: topics && topics.length ? { topics } : {} });
  }

  topicEvents(topic: string, query: { after?: number; limit?: number } = {}): Promise<EventPage> {
    return this.request('get', '/v1/topics/{topic}/events', { path: { topic }, query });
  }

  getOrder(orderId: string): Promise<Order> {
    return this.request('get', '/v1/orders/{order_id}', { path: { order_id: orderId } });
  }

  listActivities(feed: string, query: { limit?: number; cursor?: string | null } = {}): Promise<ActivityPage> {
    const { cursor, ...rest } = query;
    return this.request('get', '/v1/feeds/{feed}/activities', { path: { feed }, query: { ...rest, ...(cursor ? { cursor } : {}) } });
  }
}
