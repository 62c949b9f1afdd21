/**
 * `WebPush`: this browser's push subscription for the signed-in user, on and
 * off. What the bell's "Enable desktop notifications" switch drives; usable on
 * its own for an app's own settings page.
 *
 * On means: the page's service worker has a push subscription made with the
 * server's current VAPID key, and Herald has that endpoint for this user. So
 * the switch reads off for a second user signed in to the same browser (the
 * endpoint is the first one's), after the server rotated its key, and after
 * the browser replaced its subscription (it is sent again on the next
 * `enable()`).
 *
 * `enable()` asks for permission only from a user gesture (the browser
 * requires one), and gives up on a push service that does not answer within
 * `subscribeTimeoutMs` instead of spinning forever: a browser offline, or
 * one whose vendor push service is blocked, never settles `subscribe()`.
 */
import { HeraldError, type HeraldClient, type NewPushSubscription } from './client.js';

export type PushStatus =
  /** This browser has no service workers, Push API or notifications (or the page is not a secure context). */
  | 'unsupported'
  /** The server has no VAPID key: Web Push is not configured (404). */
  | 'unavailable'
  /** The user blocked notifications for this site. */
  | 'denied'
  | 'off'
  | 'on';

export interface PushState {
  status: PushStatus;
  /** Why it is not available, in words for the user. */
  reason?: string;
}

export interface WebPushOptions {
  client: HeraldClient;
  /** The service worker's script URL (same origin as the page), e.g. `/herald-sw.js`. */
  serviceWorker: string;
  /** Its scope (default: the script's folder). */
  scope?: string;
  /** How long `subscribe()` may take before it counts as failed. Default 20 s. */
  subscribeTimeoutMs?: number;
}

/** A failure of `enable()` or `disable()`, in words for the user. */
export class WebPushError extends Error {
  constructor(message: string, readonly cause?: unknown) {
    super(message);
    this.name = 'WebPushError';
  }
}

/** base64url (as the VAPID key travels) to bytes. */
export function base64UrlToBytes(text: string): Uint8Array {
  const b64 = text.replace(/-/g, '+').replace(/_/g, '/');
  const raw = atob(b64 + '==='.slice((b64.length + 3) % 4));
  return Uint8Array.from(raw, (c) => c.charCodeAt(0));
}

function sameBytes(a: ArrayBuffer | ArrayBufferView | null | undefined, b: Uint8Array): boolean {
  if (!a) return false;
  const x = a instanceof ArrayBuffer ? new Uint8Array(a) : new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  return x.length === b.length && x.every((v, i) => v === b[i]);
}

/** Whether this browser can do Web Push at all (it says nothing of the server). */
export function webPushSupported(): boolean {
  return typeof window !== 'undefined' &&
    window.isSecureContext === true &&
    typeof navigator !== 'undefined' && 'serviceWorker' in navigator &&
    typeof PushManager === 'function' &&
    typeof Notification === 'function';
}

const UNSUPPORTED = "This browser can't show desktop notifications for this page.";
const UNAVAILABLE = 'This server does not send desktop notifications (Web Push is not configured).';
const DENIED = "Notifications are blocked for this site. Allow them in your browser's site settings, then try again.";

function describe(err: unknown): string {
  if (err instanceof HeraldError) return err.message;
  if (err instanceof Error && err.message) return err.message;
  return String(err);
}

export class WebPush {
  private readonly client: HeraldClient;
  private readonly scriptUrl: string;
  private readonly scope: string | undefined;
  private readonly timeoutMs: number;
  private key: Promise<Uint8Array | null> | null = null;

  constructor(options: WebPushOptions) {
    if (!options || !options.client || !options.serviceWorker) throw new TypeError('WebPush: client and serviceWorker are required');
    this.client = options.client;
    this.scriptUrl = options.serviceWorker;
    this.scope = options.scope;
    this.timeoutMs = options.subscribeTimeoutMs ?? 20_000;
  }

  /** The server's VAPID key, or null when it has none (404). Other failures reject, and are asked again next time. */
  private vapidKey(): Promise<Uint8Array | null> {
    if (!this.key) {
      this.key = this.client.vapidPublicKey().then(
        (k) => base64UrlToBytes(k.public_key),
        (err) => {
          if (err instanceof HeraldError && err.status === 404) return null;
          this.key = null;
          throw err;
        },
      );
    }
    return this.key;
  }

  private urls(): { script: string; scope: string | undefined } {
    return {
      script: new URL(this.scriptUrl, document.baseURI).href,
      scope: this.scope ? new URL(this.scope, document.baseURI).href : undefined,
    };
  }

  /** Our service worker's registration, if there is one (found by scope, checked by script URL). */
  private async existingRegistration(): Promise<ServiceWorkerRegistration | null> {
    const { script, scope } = this.urls();
    // The scope, or the script itself (the default scope is the script's folder), is a URL the registration covers.
    const reg = await navigator.serviceWorker.getRegistration(scope ?? script);
    const worker = reg?.active || reg?.waiting || reg?.installing;
    return reg && worker && worker.scriptURL === script ? reg : null;
  }

  /**
   * Our service worker's registration, registering it when needed, once it has
   * an active worker (`pushManager.subscribe` refuses a registration without one).
   */
  private async registration(): Promise<ServiceWorkerRegistration> {
    let reg = await this.existingRegistration();
    if (!reg) {
      const { script, scope } = this.urls();
      reg = await navigator.serviceWorker.register(script, scope ? { scope } : undefined);
    }
    if (reg.active) return reg;
    const worker = reg.installing || reg.waiting;
    if (!worker) throw new Error('it has no worker');
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('it did not activate within 10 s')), 10_000);
      const check = () => {
        if (reg?.active) {
          clearTimeout(timer);
          worker.removeEventListener('statechange', check);
          resolve();
        } else if (worker.state === 'redundant') {
          clearTimeout(timer);
          worker.removeEventListener('statechange', check);
          reject(new Error('its script failed to install'));
        }
      };
      worker.addEventListener('statechange', check);
      check();
    });
    return reg;
  }

  /** What the switch should show now. */
  async state(): Promise<PushState> {
    if (!webPushSupported()) return { status: 'unsupported', reason: UNSUPPORTED };
    const key = await this.vapidKey();
    if (!key) return { status: 'unavailable', reason: UNAVAILABLE };
    if (Notification.permission === 'denied') return { status: 'denied', reason: DENIED };
    if (Notification.permission !== 'granted') return { status: 'off' };
    const reg = await this.existingRegistration();
    const sub = await reg?.pushManager.getSubscription();
    if (!sub || !sameBytes(sub.options?.applicationServerKey, key)) return { status: 'off' };
    const { subscriptions } = await this.client.listPushSubscriptions();
    return { status: subscriptions.some((s) => s.endpoint === sub.endpoint) ? 'on' : 'off' };
  }

  /**
   * Turns desktop notifications on for this browser: permission (call it from
   * a click), the service worker, a subscription with the server's key, and
   * `POST /v1/me/push-subscriptions`. Resolves with the new state; rejects
   * with a `WebPushError` saying what failed.
   */
  async enable(): Promise<PushState> {
    if (!webPushSupported()) throw new WebPushError(UNSUPPORTED);
    let key: Uint8Array | null;
    try {
      key = await this.vapidKey();
    } catch (err) {
      throw new WebPushError(`Couldn't reach the server: ${describe(err)}`, err);
    }
    if (!key) throw new WebPushError(UNAVAILABLE);
    const permission = Notification.permission === 'granted' ? 'granted' : await Notification.requestPermission();
    if (permission === 'denied') throw new WebPushError(DENIED);
    if (permission !== 'granted') throw new WebPushError('Notifications were not allowed. Turn the switch on again to be asked once more.');

    let reg: ServiceWorkerRegistration;
    try {
      reg = await this.registration();
    } catch (err) {
      throw new WebPushError(`The service worker (${this.scriptUrl}) could not be registered: ${describe(err)}`, err);
    }
    let sub = await reg.pushManager.getSubscription();
    if (sub && !sameBytes(sub.options?.applicationServerKey, key)) {
      await sub.unsubscribe().catch(() => false); // made with another key: it cannot receive ours
      sub = null;
    }
    if (!sub) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new WebPushError(
          `The browser's push service did not answer within ${Math.round(this.timeoutMs / 1000)} s. Is this browser offline, or its push service blocked?`)), this.timeoutMs);
      });
      try {
        sub = await Promise.race([reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key as BufferSource }), timeout]);
      } catch (err) {
        if (err instanceof WebPushError) throw err;
        throw new WebPushError(`The browser refused to subscribe: ${describe(err)}`, err);
      } finally {
        clearTimeout(timer);
      }
    }
    try {
      await this.client.addPushSubscription(sub.toJSON() as NewPushSubscription);
    } catch (err) {
      throw new WebPushError(`The server refused this browser's subscription: ${describe(err)}`, err);
    }
    return { status: 'on' };
  }

  /** Turns them off: `DELETE /v1/me/push-subscriptions` for this browser's endpoint, then unsubscribes it. */
  async disable(): Promise<PushState> {
    if (!webPushSupported()) return { status: 'unsupported', reason: UNSUPPORTED };
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
    return { status: 'off' };
  }
}
