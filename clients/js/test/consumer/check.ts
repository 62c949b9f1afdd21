// Type-checked (never run) by scripts/js-test in a scratch project that installed the
// `npm pack` tarball of @herald/client: the published types must match Herald's spec.
// Each `@ts-expect-error` asserts the generated types REJECT a wrong call; if one stopped
// rejecting, tsc fails on the unused directive.
import {
  HeraldClient,
  HeraldError,
  HeraldStream,
  Inbox,
  UserPreferences,
  WebPush,
  WebPushError,
  entrySummary,
  entryText,
  type Counts,
  type Envelope,
  type Notification,
  type NotificationPage,
  type Preferences,
  type PushState,
  type paths,
} from '@herald/client';
import { DEFAULT_SNOOZE_OPTIONS, HeraldBell, defineHeraldBell, type SnoozeOption } from '@herald/client/bell';
import { handleNotificationClick, handlePush, installHeraldServiceWorker, parsePayload, type PushPayload } from '@herald/client/sw';
import type { components } from '@herald/client/schema';

const client = new HeraldClient({ baseUrl: 'https://notify.example.com', token: async () => 'jwt' });

async function typed(): Promise<void> {
  const page: NotificationPage = await client.request('get', '/v1/me/notifications', { query: { status: 'unread', limit: 20 } });
  const first: Notification | undefined = page.items[0];
  const title: string | undefined = first?.title;
  const counts: Counts = await client.counts();
  const unread: number = counts.unread;
  const token = await client.request('post', '/v1/stream-tokens', { body: { topics: ['user:alice'] } });
  const expires: number = token.expires_in;
  const n: Notification = await client.request('post', '/v1/me/notifications/{id}/read', { path: { id: 'x' } });
  const order = await client.getOrder('A-1001');
  const status: components['schemas']['OrderStatus'] = order.status;
  void [title, unread, expires, n, status];

  // @ts-expect-error: no such path in the spec
  await client.request('get', '/v1/me/notifs');
  // @ts-expect-error: the inbox cannot be DELETEd
  await client.request('delete', '/v1/me/notifications');
  // @ts-expect-error: `limit` is a number
  await client.request('get', '/v1/me/notifications', { query: { limit: 'ten' } });
  // @ts-expect-error: the path parameter is required
  await client.request('post', '/v1/me/notifications/{id}/read', {});
  // @ts-expect-error: a stream-token body's topics are strings
  await client.request('post', '/v1/stream-tokens', { body: { topics: [42] } });
  // @ts-expect-error: Counts has no `count`
  const wrong: number = counts.count;
  void wrong;
}

async function groupsAndSnooze(): Promise<void> {
  const snoozed: Notification = await client.snooze('x', new Date(Date.now() + 3_600_000));
  const back: Notification = await client.unsnooze('x');
  const later: NotificationPage = await client.listNotifications({ status: 'snoozed' });
  const group: [number, string[], string | null | undefined, string] = [back.group_count, back.actors, snoozed.snoozed_until, back.latest_at];
  const line: string = entrySummary(back);
  const lead: string | null = entryText(back).lead;
  await inbox.snooze('x', new Date(Date.now() + 3_600_000));
  await inbox.unsnooze('x');
  const held: Notification[] = inbox.listSnoozed();
  // @ts-expect-error: `until` is a Date or an RFC 3339 string
  await client.snooze('x', 3600);
  // @ts-expect-error: no such status
  await client.listNotifications({ status: 'later' });
  // @ts-expect-error: a snooze has a body with `until`
  await client.request('post', '/v1/me/notifications/{id}/snooze', { path: { id: 'x' } });
  const soon: SnoozeOption = { label: 'For 10 minutes', until: (now) => new Date(now.getTime() + 600_000) };
  bell.snoozeOptions = [soon, ...DEFAULT_SNOOZE_OPTIONS];
  void [later, group, line, lead, held];
}
void groupsAndSnooze;

const stream = new HeraldStream({ url: 'https://stream.example.com', getToken: (topics) => client.createStreamToken(topics) });
stream.on('notification.created', (env: Envelope) => console.log(env.seq, env.topic));
stream.onResync(null, (reason: 'open' | 'reset') => console.log(reason));
stream.onState((s) => console.log(s === 'live'));
const inbox = new Inbox(client, stream);
inbox.onChange(() => console.log(inbox.unread));

defineHeraldBell();
const bell = document.createElement('herald-bell');
const isBell: HeraldBell = bell;
bell.getToken = async () => 'jwt';
bell.stream = stream;
const unreadNow: number | null = bell.unread;
bell.categoryLabel = (name) => name.toUpperCase();
void [typed, isBell, unreadNow, HeraldError];

async function preferencesAndPush(): Promise<void> {
  const prefs: Preferences = await client.preferences();
  const required: boolean | undefined = prefs.categories['comment']?.required;
  await client.updatePreferences({ categories: { comment: { in_app: false, web_push: null } } });
  // @ts-expect-error: a channel is on, off or null (the default)
  await client.updatePreferences({ categories: { comment: { in_app: 'off' } } });
  const key: string = (await client.vapidPublicKey()).public_key;
  const endpoints: string[] = (await client.listPushSubscriptions()).subscriptions.map((s) => s.endpoint);
  await client.addPushSubscription({ endpoint: 'https://fcm.googleapis.com/fcm/send/x', expirationTime: null, keys: { p256dh: 'BN', auth: 'tB' } });
  // @ts-expect-error: a subscription has keys
  await client.addPushSubscription({ endpoint: 'https://fcm.googleapis.com/fcm/send/x' });
  await client.removePushSubscription('https://fcm.googleapis.com/fcm/send/x');

  const live = new UserPreferences(client, stream);
  await live.set('comment', 'web_push', false);
  // @ts-expect-error: the channels are in_app and web_push
  await live.set('comment', 'email', false);
  const webPush = new WebPush({ client, serviceWorker: '/herald-sw.js' });
  const state: PushState = await webPush.state();
  if (state.status === 'off') await webPush.enable().catch((e: WebPushError) => console.log(e.message));
  const fromBell: WebPush | null = bell.webPush;
  void [required, key, endpoints, fromBell];

  const payload: PushPayload | null = parsePayload({ json: () => ({ id: 'x', title: 't' }) });
  await handlePush(payload, { registration: { scope: '/', showNotification: async () => {} } });
  await handleNotificationClick({ data: null, close() {} }, { clients: { matchAll: async () => [], openWindow: async () => null }, scope: '/' });
  void installHeraldServiceWorker;
}
void preferencesAndPush;
type StreamOp = paths['/v1/stream']['get'];
void (null as unknown as StreamOp);
