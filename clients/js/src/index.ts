/**
 * `@herald/client`: Herald in the browser.
 *
 * - `HeraldClient`: the REST API, typed from Herald's OpenAPI document.
 * - `HeraldStream`: live events over one `EventSource` per browser, shared by
 *   every tab of the origin, resumed without loss or duplicates.
 * - `Inbox`: notifications and exact counts kept current from both, with
 *   groups and snooze; `entryText` words a grouped entry.
 * - `UserPreferences`: the user's choices per category and channel, live.
 * - `WebPush`: this browser's push subscription on and off (with the
 *   service worker of `@herald/client/sw`, built as `herald-sw.js`).
 * - `<herald-bell>`: import `@herald/client/bell` (or load the single-file
 *   `dist/browser/herald-bell.js`) to define it.
 */
export {
  HeraldClient,
  HeraldError,
  type Activity,
  type ActivityPage,
  type BodyOf,
  type CategoryPreference,
  type Channel,
  type ChannelChoice,
  type Counts,
  type Envelope,
  type EventPage,
  type HeraldClientOptions,
  type Method,
  type NewPushSubscription,
  type Notification,
  type NotificationPage,
  type NotificationStatus,
  type Order,
  type OrderStatus,
  type PathsWith,
  type Preferences,
  type PreferencesChange,
  type Problem,
  type PushSubscriptionInfo,
  type PushSubscriptionList,
  type RequestOptions,
  type Schemas,
  type StreamToken,
  type SuccessOf,
  type TokenSource,
  type VapidPublicKey,
  type components,
  type paths,
} from './client.js';
export {
  HeraldStream,
  type HeraldStreamOptions,
  type ResyncReason,
  type StreamRole,
  type StreamStatus,
  type StreamTokenAnswer,
  type StreamTokenSource,
} from './stream.js';
export { Inbox, INBOX_EVENTS, compareNotifications, type InboxChange } from './inbox.js';
export { ACTORS_KEPT, actorPhrase, entrySummary, entryText, type EntryText } from './group.js';
export { UserPreferences, PREFERENCE_EVENTS, type PreferencesChangeEvent } from './preferences.js';
export {
  WebPush,
  WebPushError,
  base64UrlToBytes,
  webPushSupported,
  type PushState,
  type PushStatus,
  type WebPushOptions,
} from './push.js';
