/*
 * Herald activity feed — a team feed on the /demo dashboard, updated live.
 *
 * Plain ES2020, no dependencies, no build step. Needs herald.js (loaded first).
 *
 *   The feed name comes from the page URL: /demo?feed=<name> (default `demo`).
 *
 *   REST  GET /v1/feeds/{feed}/activities?limit=10[&cursor=…]   newest first
 *         -> {items: [{id, feed, actor, verb, object, target, data, foreign_id,
 *                      created_at, updated_at}], next_cursor}
 *         Reading needs a user token whose `topics` claim grants `feed:{feed}` (exactly or
 *         `feed:*`): a 403 shows a note instead of the list.
 *   Stream  topic `feed:{feed}`, added to the page's one stream only once the list loaded.
 *         activity.created  the activity (prepended)
 *         activity.updated  the activity (replaces the one with its id)
 *
 * Consistency rules
 *   - Activities are keyed by id, and of two copies the one with the later `updated_at`
 *     wins: replays, refetches and events racing with a page are all harmless.
 *   - "Load more" continues from `next_cursor`, which stays correct while activities are
 *     added. An update for an activity older than what is loaded waits for its page.
 *   - On resync (herald.reset, or a stream that could not resume) the first page is
 *     fetched again and merged.
 */
(() => {
  'use strict';

  const H = window.Herald;
  const { api, el, time, relativeTime, hue } = H;
  const PAGE_SIZE = 10;

  const root = document.querySelector('[data-testid="feed"]');
  if (!root) return;
  const $ = (id) => document.getElementById(id);
  const ui = {
    name: $('feed-name'),
    live: $('feed-live'),
    list: $('activities'),
    status: $('feed-status'),
    foot: $('feed-foot'),
    more: $('feed-more'),
  };

  const raw = new URLSearchParams(window.location.search).get('feed');
  const wanted = raw === null || raw.trim() === '' ? 'demo' : raw.trim();
  const feed = H.topicKey(wanted);
  const topic = feed ? 'feed:' + feed : null;

  const state = {
    phase: feed ? 'loading' : 'invalid', // loading | ready | forbidden | invalid | error
    error: null,
    items: new Map(), // id -> activity
    nextCursor: null,
    loadingMore: false,
    liveRefused: false,
    fresh: new Set(), // ids that just arrived live (highlighted once)
  };
  const rows = new Map(); // id -> <li>

  // ------------------------------------------------------------------ model

  /** Newest first; ids (UUIDv7) break ties. */
  function compare(a, b) {
    const d = time(b.created_at) - time(a.created_at);
    if (d !== 0) return d;
    return a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
  }

  function oldest() {
    let o = null;
    for (const it of state.items.values()) if (!o || compare(it, o) > 0) o = it;
    return o;
  }

  /** Whether `a` belongs to what is loaded (older ones come with "Load more"). */
  function inLoadedRange(a) {
    if (state.nextCursor === null) return true;
    const o = oldest();
    return !o || compare(a, o) <= 0;
  }

  /** Keeps the copy with the later updated_at. Returns true if `a` was stored. */
  function put(a, force) {
    if (!a || typeof a.id !== 'string' || (a.feed && a.feed !== feed)) return false;
    const have = state.items.get(a.id);
    if (have && time(have.updated_at) > time(a.updated_at)) return false;
    if (!have && !force && !inLoadedRange(a)) return false;
    state.items.set(a.id, a);
    return true;
  }

  /** Merges a first page (initial load or resync). */
  function applyFirstPage(page) {
    const items = (page && Array.isArray(page.items)) ? page.items : [];
    const before = oldest();
    const wasLoaded = state.phase === 'ready';
    for (const a of items) put(a, true);
    // Keep our cursor when we already hold older pages than this one reaches.
    const pageOldest = items.length ? items[items.length - 1] : null;
    if (!wasLoaded || !before || (pageOldest && compare(pageOldest, before) >= 0)) {
      state.nextCursor = page && page.next_cursor ? page.next_cursor : null;
    }
    state.phase = 'ready';
    state.error = null;
  }

  function onActivity(type, env) {
    const a = env && env.data;
    if (!a || (env.topic && env.topic !== topic) || state.phase !== 'ready') return;
    const isNew = !state.items.has(a.id);
    if (put(a, type === 'activity.created') && isNew) state.fresh.add(a.id);
    render();
  }

  // ------------------------------------------------------------------ REST

  function fetchPage(cursor) {
    const q = new URLSearchParams({ limit: String(PAGE_SIZE) });
    if (cursor) q.set('cursor', cursor);
    return api('GET', '/v1/feeds/' + encodeURIComponent(feed) + '/activities?' + q.toString());
  }

  let inflight = null;
  let again = false;

  /** Fetches the first page (single-flight; a request made meanwhile runs after it). */
  function refresh() {
    if (!feed || H.fatal) return Promise.resolve();
    if (inflight) {
      again = true;
      return inflight;
    }
    inflight = (async () => {
      do {
        again = false;
        try {
          applyFirstPage(await fetchPage(null));
          // Only now that reading worked does the stream ask for feed:{name}.
          H.stream.addTopic(topic, {
            onRefused: () => {
              state.liveRefused = true;
              renderLive();
            },
          });
        } catch (e) {
          if (H.fatal) return;
          if (state.phase !== 'ready') {
            state.phase = e instanceof H.HttpError && e.status === 403 ? 'forbidden' : 'error';
            state.error = e.message;
          } else {
            H.toast('Couldn\'t refresh the activity feed.');
          }
        }
        render();
      } while (again);
    })().finally(() => {
      inflight = null;
    });
    return inflight;
  }

  async function loadMore() {
    if (state.loadingMore || state.phase !== 'ready' || !state.nextCursor || H.fatal) return;
    state.loadingMore = true;
    render();
    const cursor = state.nextCursor;
    try {
      const page = await fetchPage(cursor);
      if (state.nextCursor === cursor) {
        for (const a of page.items || []) put(a, true);
        state.nextCursor = page.next_cursor || null;
      }
    } catch (_) {
      H.toast('Couldn\'t load more activity.');
    } finally {
      state.loadingMore = false;
      render();
    }
  }

  H.stream.on('activity.created', (env) => onActivity('activity.created', env));
  H.stream.on('activity.updated', (env) => onActivity('activity.updated', env));
  H.stream.onResync(topic, () => refresh());
  H.stream.onState(renderLive);

  // ------------------------------------------------------------------ render

  /** `user:alice` -> `alice`; anything else as given. */
  function who(s) {
    const m = /^user:(.+)$/.exec(String(s || ''));
    return m ? m[1] : String(s || '');
  }

  const PHRASES = {
    commented: 'commented on',
    replied: 'replied to',
    reacted: 'reacted to',
    voted: 'voted on',
    subscribed: 'subscribed to',
    joined: 'joined',
    mentioned: 'mentioned you in',
  };
  function phrase(verb) {
    return PHRASES[verb] || String(verb || '').replace(/[_.-]+/g, ' ');
  }

  function renderLive() {
    const live = !!topic && H.stream.isLive(topic);
    root.dataset.live = String(live);
    const show = state.phase === 'ready';
    ui.live.hidden = !show;
    if (!show) return;
    ui.live.dataset.state = live ? 'live' : state.liveRefused ? 'off' : 'waiting';
    ui.live.lastChild.textContent = live ? 'Live' : state.liveRefused ? 'Not live' : 'Connecting';
    ui.live.title = live ? 'New activity arrives live on ' + topic
      : state.liveRefused ? 'This token may not stream ' + topic : 'Waiting for the live connection';
  }

  function render() {
    renderLive();
    ui.name.textContent = '#' + (feed || wanted);
    const now = Date.now();

    const sorted = state.phase === 'ready' ? Array.from(state.items.values()).sort(compare) : [];
    const keep = new Set();
    let prev = null;
    for (const a of sorted) {
      keep.add(a.id);
      let li = rows.get(a.id);
      if (!li) {
        li = createRow(a.id);
        rows.set(a.id, li);
      }
      updateRow(li, a, now);
      const want = prev ? prev.nextSibling : ui.list.firstChild;
      if (want !== li) ui.list.insertBefore(li, want);
      prev = li;
    }
    for (const [id, li] of rows) {
      if (!keep.has(id)) {
        li.remove();
        rows.delete(id);
      }
    }
    for (const id of state.fresh) {
      const li = rows.get(id);
      if (li) {
        li.classList.remove('fresh');
        void li.offsetWidth;
        li.classList.add('fresh');
      }
    }
    state.fresh.clear();

    ui.list.hidden = sorted.length === 0;
    ui.foot.hidden = !(state.phase === 'ready' && (state.nextCursor || state.loadingMore));
    ui.more.disabled = state.loadingMore;
    ui.more.textContent = state.loadingMore ? 'Loading…' : 'Load more';
    ui.status.replaceChildren();
    const note = statusNote(sorted.length);
    ui.status.hidden = !note;
    if (note) ui.status.append(note);
  }

  function statusNote(count) {
    const box = (title, html, tone) => {
      const d = el('div', 'panel-note' + (tone ? ' ' + tone : ''));
      d.append(el('p', 'panel-note-title', title));
      const p = el('p', 'panel-note-text');
      p.innerHTML = html; // static text; names are escaped
      d.append(p);
      return d;
    };
    const name = escapeHtml(feed || wanted);
    switch (state.phase) {
      case 'loading': {
        const d = el('div', 'panel-loading');
        d.append(el('span', 'spinner'), document.createTextNode(' Loading activity…'));
        return d;
      }
      case 'invalid':
        return box('That feed name isn\'t valid', 'Feed names are 1–200 characters of <code>A-Z a-z 0-9 . _ ~ @ : -</code>.', 'warn');
      case 'forbidden':
        return box('This feed is private',
          'Your token doesn\'t grant <code>feed:' + name + '</code>. Sign in with a token whose ' +
          '<code>topics</code> claim includes it, e.g. <code>herald-token --sub ' + escapeHtml(H.sub || 'alice') +
          ' --topics \'feed:*\'</code>.', 'warn');
      case 'error': {
        const d = box('Couldn\'t load the feed', escapeHtml(state.error || 'The request failed.'), 'error');
        const retry = el('button', 'link-btn', 'Retry');
        retry.type = 'button';
        retry.addEventListener('click', () => {
          state.phase = 'loading';
          render();
          refresh();
        });
        d.append(retry);
        return d;
      }
      default:
        if (count > 0) return null;
        return box('No activity yet',
          'Post to <code>feed:' + name + '</code> and it shows up here instantly:<br>' +
          '<code>POST /v1/feeds/' + name + '/activities {"actor":"user:maya","verb":"commented","object":"post:7"}</code>');
    }
  }

  function escapeHtml(s) {
    return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', '\'': '&#39;' }[c]));
  }

  function createRow(id) {
    const li = el('li', 'activity');
    li.dataset.testid = 'activity';
    li.dataset.id = id;
    const avatar = el('span', 'activity-avatar');
    avatar.setAttribute('aria-hidden', 'true');
    const main = el('div', 'activity-main');
    const text = el('div', 'activity-text');
    text.dataset.testid = 'activity-text';
    const meta = el('div', 'activity-meta');
    const when = el('time');
    const edited = el('span', 'activity-edited', '· edited');
    meta.append(when, edited);
    main.append(text, meta);
    li.append(avatar, main);
    li._ui = { avatar, text, when, edited };
    return li;
  }

  function updateRow(li, a, now) {
    const r = li._ui;
    const actor = who(a.actor);
    const initials = actor.replace(/[^A-Za-z0-9]/g, '').slice(0, 2) || '•';
    if (r.avatar.textContent !== initials) {
      r.avatar.textContent = initials;
      r.avatar.style.setProperty('--hue', String(hue(actor)));
    }
    const key = [a.actor, a.verb, a.object, a.target || ''].join('\u0000');
    if (li._key !== key) {
      li._key = key;
      r.text.replaceChildren(
        el('strong', 'activity-actor', actor),
        document.createTextNode(' ' + phrase(a.verb) + ' '),
        el('strong', 'activity-object', who(a.object)),
      );
      if (a.target) r.text.append(document.createTextNode(' in '), el('span', 'activity-target', who(a.target)));
    }
    li.dataset.verb = a.verb || '';
    r.when.dateTime = a.created_at || '';
    r.when.title = a.created_at ? new Date(time(a.created_at)).toLocaleString() : '';
    r.when.textContent = relativeTime(a.created_at, now);
    r.edited.hidden = !(a.updated_at && time(a.updated_at) - time(a.created_at) > 1000);
  }

  // ------------------------------------------------------------------ start

  ui.more.addEventListener('click', loadMore);
  setInterval(() => { if (state.phase === 'ready') render(); }, 30000);

  render();
  if (feed && H.token) {
    H.stream.hold(refresh()); // the first stream waits for this, to carry feed:{name} from the start
  } else if (feed) {
    state.phase = 'error';
    state.error = 'No token.';
    render();
  }
})();
