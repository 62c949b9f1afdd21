/*
 * Herald notification bell — the client side of the /demo page's bell.
 *
 * Plain ES2020, no dependencies, no build step. Needs herald.js (loaded first).
 *
 *   REST (same origin as this page, `Authorization: Bearer <user token>`)
 *     GET  /v1/me/notifications?status=all&limit=20&cursor=…   the inbox, newest first
 *     GET  /v1/me/notifications/counts                         {unread, unseen, total}
 *     POST /v1/me/notifications/{id}/read | /unread | /archive
 *     POST /v1/me/notifications/read-all | /seen
 *     POST /v1/stream-tokens                                   short-lived token for the stream URL
 *
 *   Stream: the page's one EventSource, shared through herald.js (`Herald.stream`), which
 *   mints the stream token, resumes after every disconnect and handles herald.reauth.
 *     notification.created / notification.updated  {notification, counts}
 *     inbox.read_all / inbox.seen                    {counts}
 *     resync (herald.reset, or a stream that could not resume): refetch over REST
 *
 * Consistency rules
 *   - Events arrive in seq order, so the counts of the latest event are the truth.
 *   - A REST answer that carries state (counts, a page, a notification) is applied only
 *     if no inbox event arrived while the request was in flight (`eventGen`); otherwise
 *     the event is newer (or the same) and wins, and a snapshot is simply fetched again.
 *   - Notifications are keyed by id: an id is never shown twice, replays are harmless.
 *   - herald.js tracks the seq of every event (`e.lastEventId`) and resumes from it whenever
 *     it opens a stream itself; when it cannot, it asks us to resync and we refetch over REST.
 */
(() => {
  'use strict';

  const H = window.Herald;
  const { api, toast, time, relativeTime, hue } = H;
  const PAGE_SIZE = 20;
  const INBOX_EVENTS = ['notification.created', 'notification.updated', 'inbox.read_all', 'inbox.seen'];

  // ------------------------------------------------------------------ state

  const state = {
    items: new Map(), // notification id -> N (archived ones are dropped)
    nextCursor: null,
    listLoaded: false,
    listError: null,
    loadingMore: false,
    counts: null, // {unread, unseen, total}
    eventGen: 0, // bumped by every inbox event

    open: false,
    fresh: new Set(), // ids that just arrived live (highlighted once)
  };

  // ------------------------------------------------------------------ DOM

  const $ = (id) => document.getElementById(id);
  const ui = {
    bell: $('bell'),
    badge: $('badge'),
    dropdown: $('dropdown'),
    scroll: $('dd-scroll'),
    list: $('items'),
    empty: $('dd-empty'),
    loading: $('dd-loading'),
    error: $('dd-error'),
    errorText: $('dd-error-text'),
    retry: $('dd-retry'),
    markAll: $('mark-all-read'),
    ddCount: $('dd-count'),
    avatar: $('avatar'),
    greeting: $('greeting'),
    howto: $('howto-code'),
  };
  const rows = new Map(); // notification id -> <li>
  const baseTitle = document.title;

  // ------------------------------------------------------------------ helpers

  /** Newest first; ids (UUIDv7) break ties. */
  function compareItems(a, b) {
    const d = time(b.created_at) - time(a.created_at);
    if (d !== 0) return d;
    return a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
  }

  /** Only http(s) and same-origin relative links are followed. */
  function safeUrl(raw) {
    if (typeof raw !== 'string' || !raw) return null;
    try {
      const u = new URL(raw, window.location.href);
      return u.protocol === 'http:' || u.protocol === 'https:' ? u.href : null;
    } catch (_) {
      return null;
    }
  }

  // ------------------------------------------------------------------ model

  /** The oldest loaded item bounds what we know: older ones come with pagination. */
  function inLoadedRange(n) {
    if (!state.listLoaded || state.nextCursor === null) return true;
    let oldest = null;
    for (const it of state.items.values()) if (!oldest || compareItems(it, oldest) > 0) oldest = it;
    return !oldest || compareItems(n, oldest) <= 0;
  }

  function upsert(n) {
    if (!n || typeof n.id !== 'string') return;
    if (n.archived_at) {
      state.items.delete(n.id);
      return;
    }
    if (!state.items.has(n.id) && !inLoadedRange(n)) return;
    state.items.set(n.id, n);
  }

  function setCounts(c) {
    if (!c || typeof c.unread !== 'number') return;
    state.counts = { unread: c.unread, unseen: c.unseen, total: c.total };
  }

  function unreadLoaded() {
    let n = 0;
    for (const it of state.items.values()) if (!it.read_at) n++;
    return n;
  }

  // ------------------------------------------------------------------ REST snapshots

  let refreshing = null;
  let refreshAgain = false;

  /** Counts + first page, retried while inbox events race with it. Single-flight. */
  function refreshAll() {
    if (H.fatal) return Promise.resolve();
    if (refreshing) {
      refreshAgain = true;
      return refreshing;
    }
    refreshing = (async () => {
      if (!state.listLoaded) render();
      for (let attempt = 0; attempt < 5; attempt++) {
        refreshAgain = false;
        const gen = state.eventGen;
        let counts, page;
        try {
          [counts, page] = await Promise.all([
            api('GET', '/v1/me/notifications/counts'),
            fetchPage(null),
          ]);
        } catch (e) {
          if (H.fatal) return;
          state.listError = 'Couldn\'t load notifications.';
          render();
          return;
        }
        const raced = state.eventGen !== gen || refreshAgain;
        if (raced && attempt < 4) continue;
        state.items.clear();
        for (const n of page.items || []) if (n && n.id && !n.archived_at) state.items.set(n.id, n);
        state.nextCursor = page.next_cursor || null;
        state.listLoaded = true;
        state.listError = null;
        setCounts(counts);
        render();
        fillViewport();
        return;
      }
    })().finally(() => {
      refreshing = null;
    });
    return refreshing;
  }

  async function refreshCounts() {
    if (H.fatal) return;
    const gen = state.eventGen;
    try {
      const c = await api('GET', '/v1/me/notifications/counts');
      if (state.eventGen === gen) {
        setCounts(c);
        render();
      }
    } catch (_) { /* the next event or refresh fixes it */ }
  }

  function fetchPage(cursor) {
    const q = new URLSearchParams({ status: 'all', limit: String(PAGE_SIZE) });
    if (cursor) q.set('cursor', cursor);
    return api('GET', '/v1/me/notifications?' + q.toString());
  }

  async function loadMore() {
    if (state.loadingMore || !state.listLoaded || !state.nextCursor || H.fatal) return;
    state.loadingMore = true;
    render();
    const cursor = state.nextCursor;
    try {
      const page = await fetchPage(cursor);
      if (state.nextCursor === cursor) { // a refresh did not replace the list meanwhile
        for (const n of page.items || []) {
          // An id we already hold may carry newer state from an event: keep ours.
          if (!state.items.has(n.id) && !n.archived_at) state.items.set(n.id, n);
        }
        state.nextCursor = page.next_cursor || null;
      }
    } catch (_) {
      toast('Couldn\'t load more notifications.');
    } finally {
      state.loadingMore = false;
      render();
    }
    fillViewport();
  }

  /** Infinite scroll: near the bottom (or nothing to scroll yet), fetch the next page. */
  function fillViewport() {
    if (!state.open || !state.nextCursor || state.loadingMore) return;
    const s = ui.scroll;
    if (s.scrollHeight - s.scrollTop - s.clientHeight < 120) loadMore();
  }

  // ------------------------------------------------------------------ actions

  let seenTimer = null;
  function markSeenSoon(delay) {
    clearTimeout(seenTimer);
    seenTimer = setTimeout(async () => {
      if (H.fatal) return;
      const gen = state.eventGen;
      try {
        const c = await api('POST', '/v1/me/notifications/seen');
        if (state.eventGen === gen) {
          setCounts(c);
          render();
        }
      } catch (_) { /* not worth a toast */ }
    }, delay);
  }

  async function setReadState(id, action) {
    const n = state.items.get(id);
    if (!n || H.fatal) return;
    const gen = state.eventGen;
    // Optimistic: the row and the badge change now; the event brings the exact counts.
    const wasUnread = !n.read_at;
    if (action === 'archive') {
      state.items.delete(id);
      if (wasUnread && state.counts) state.counts.unread = Math.max(0, state.counts.unread - 1);
    } else if (action === 'read' && wasUnread) {
      state.items.set(id, Object.assign({}, n, { read_at: new Date().toISOString() }));
      if (state.counts) state.counts.unread = Math.max(0, state.counts.unread - 1);
    } else if (action === 'unread' && !wasUnread) {
      state.items.set(id, Object.assign({}, n, { read_at: null }));
      if (state.counts) state.counts.unread += 1;
    }
    render();
    try {
      const updated = await api('POST', '/v1/me/notifications/' + encodeURIComponent(id) + '/' + action);
      if (state.eventGen === gen && updated && updated.id === id) {
        upsert(updated);
        render();
      }
      if (H.stream.status !== 'live') refreshCounts();
    } catch (e) {
      if (H.fatal) return;
      toast(action === 'archive' ? 'Couldn\'t archive that notification.' : 'Couldn\'t update that notification.');
      refreshAll();
    }
  }

  async function markAllRead() {
    if (H.fatal) return;
    const gen = state.eventGen;
    const now = new Date().toISOString();
    for (const [id, n] of state.items) if (!n.read_at) state.items.set(id, Object.assign({}, n, { read_at: now }));
    if (state.counts) state.counts.unread = 0;
    render();
    try {
      const c = await api('POST', '/v1/me/notifications/read-all');
      if (state.eventGen === gen) {
        setCounts(c);
        render();
      }
    } catch (_) {
      if (H.fatal) return;
      toast('Couldn\'t mark everything as read.');
      refreshAll();
    }
  }

  function openDropdown() {
    if (state.open) return;
    state.open = true;
    ui.dropdown.hidden = false;
    ui.bell.setAttribute('aria-expanded', 'true');
    if (!state.listLoaded && !refreshing) refreshAll();
    render();
    markSeenSoon(0);
    fillViewport();
  }

  function closeDropdown() {
    if (!state.open) return;
    state.open = false;
    ui.dropdown.hidden = true;
    ui.bell.setAttribute('aria-expanded', 'false');
  }

  // ------------------------------------------------------------------ stream

  for (const type of INBOX_EVENTS) H.stream.on(type, (env) => onInboxEvent(type, env));
  H.stream.onResync(null, (reason) => {
    if (reason === 'reset') state.eventGen++; // any snapshot in flight is stale now
    refreshAll();
  });

  function onInboxEvent(type, env) {
    const data = (env && env.data) || {};
    state.eventGen++;

    if (type === 'notification.created' || type === 'notification.updated') {
      const n = data.notification;
      const isNew = n && !state.items.has(n.id);
      upsert(n);
      if (type === 'notification.created' && isNew && state.items.has(n.id)) {
        state.fresh.add(n.id);
        ringBell();
        if (state.open) markSeenSoon(600); // it is on screen: it has been seen
      }
    } else if (type === 'inbox.read_all' || type === 'inbox.seen') {
      // Only counts travel; apply the change to what we hold, up to the event's time.
      const field = type === 'inbox.read_all' ? 'read_at' : 'seen_at';
      const at = env.created_at || new Date().toISOString();
      const cutoff = time(at);
      for (const [id, n] of state.items) {
        if (!n[field] && time(n.created_at) <= cutoff) state.items.set(id, Object.assign({}, n, { [field]: at }));
      }
    }
    setCounts(data.counts);
    render();
  }

  let ringTimer = null;
  function ringBell() {
    ui.bell.classList.remove('ring');
    void ui.bell.offsetWidth; // restart the animation
    ui.bell.classList.add('ring');
    clearTimeout(ringTimer);
    ringTimer = setTimeout(() => ui.bell.classList.remove('ring'), 800);
  }

  // ------------------------------------------------------------------ render

  function render() {
    const unread = state.counts ? state.counts.unread : null;

    // Badge: the exact unread count, never capped; hidden at 0 (or before we know).
    if (unread && unread > 0) {
      ui.badge.textContent = String(unread);
      ui.badge.hidden = false;
      ui.bell.setAttribute('aria-label', 'Notifications, ' + unread + ' unread');
      document.title = '(' + unread + ') ' + baseTitle;
    } else {
      ui.badge.textContent = '';
      ui.badge.hidden = true;
      ui.bell.setAttribute('aria-label', 'Notifications');
      document.title = baseTitle;
    }
    ui.ddCount.textContent = unread ? unread + ' unread' : '';
    ui.markAll.disabled = !(unread > 0 || unreadLoaded() > 0);

    if (!state.open) return;
    renderList();
  }

  function renderList() {
    const now = Date.now();
    // Expired entries leave the inbox (the server stops counting them too).
    const sorted = Array.from(state.items.values())
      .filter((n) => !n.expires_at || time(n.expires_at) > now)
      .sort(compareItems);
    const keep = new Set();
    let prev = null;
    for (const n of sorted) {
      keep.add(n.id);
      let li = rows.get(n.id);
      if (!li) {
        li = createRow(n.id);
        rows.set(n.id, li);
      }
      updateRow(li, n, now);
      const wanted = prev ? prev.nextSibling : ui.list.firstChild;
      if (wanted !== li) ui.list.insertBefore(li, wanted);
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
      if (li) li.classList.add('fresh');
    }
    state.fresh.clear();

    const loading = !state.listLoaded && !state.listError;
    ui.loading.hidden = !(loading || state.loadingMore);
    ui.error.hidden = !state.listError;
    ui.errorText.textContent = state.listError || '';
    ui.empty.hidden = !(state.listLoaded && sorted.length === 0 && !state.nextCursor);
  }

  function createRow(id) {
    const li = document.createElement('li');
    li.className = 'item';
    li.dataset.testid = 'notification';
    li.dataset.id = id;

    const icon = document.createElement('div');
    icon.className = 'item-icon';
    icon.setAttribute('aria-hidden', 'true');

    const main = document.createElement('div');
    main.className = 'item-main';
    const title = document.createElement('div');
    title.className = 'item-title';
    title.dataset.testid = 'title';
    const body = document.createElement('div');
    body.className = 'item-body';
    body.dataset.testid = 'body';
    const meta = document.createElement('div');
    meta.className = 'item-meta';
    const when = document.createElement('time');
    when.dataset.testid = 'time';
    const sep = document.createElement('span');
    sep.textContent = '·';
    sep.setAttribute('aria-hidden', 'true');
    const cat = document.createElement('span');
    cat.className = 'item-cat';
    meta.append(when, sep, cat);
    main.append(title, body);

    const dot = document.createElement('span');
    dot.className = 'dot';
    dot.dataset.testid = 'unread-dot';
    const actions = document.createElement('div');
    actions.className = 'item-actions';
    const toggle = document.createElement('button');
    toggle.type = 'button';
    const archive = document.createElement('button');
    archive.type = 'button';
    archive.className = 'item-action subtle';
    archive.dataset.testid = 'archive';
    archive.dataset.action = 'archive';
    archive.textContent = 'Archive';
    actions.append(toggle, archive);
    const foot = document.createElement('div');
    foot.className = 'item-foot';
    foot.append(meta, actions);
    main.append(foot);

    li.append(icon, main, dot);
    li._ui = { icon, title, body, when, cat, dot, toggle };
    return li;
  }

  function updateRow(li, n, now) {
    const r = li._ui;
    const unread = !n.read_at;
    li.classList.toggle('unread', unread);
    li.dataset.unread = String(unread);
    const link = safeUrl(n.action_url);
    li.classList.toggle('linked', !!link);

    const category = typeof n.category === 'string' ? n.category : '';
    if (r.icon.textContent !== (category[0] || '•')) {
      r.icon.textContent = category[0] || '•';
      r.icon.style.setProperty('--hue', String(hue(category)));
    }
    if (r.title.textContent !== String(n.title || '')) r.title.textContent = String(n.title || '');
    const body = n.body == null ? '' : String(n.body);
    if (r.body.textContent !== body) r.body.textContent = body;
    r.body.hidden = !body;
    r.when.dateTime = n.created_at || '';
    r.when.title = n.created_at ? new Date(time(n.created_at)).toLocaleString() : '';
    r.when.textContent = relativeTime(n.created_at, now);
    r.cat.textContent = category;
    r.dot.setAttribute('aria-label', unread ? 'Unread' : 'Read');

    const wanted = unread ? 'read' : 'unread';
    if (r.toggle.dataset.action !== wanted) {
      r.toggle.dataset.action = wanted;
      r.toggle.dataset.testid = unread ? 'mark-read' : 'mark-unread';
      r.toggle.className = unread ? 'item-action primary' : 'item-action subtle';
      r.toggle.textContent = unread ? 'Mark read' : 'Mark unread';
    }
  }

  // ------------------------------------------------------------------ wiring

  function wire() {
    ui.bell.addEventListener('click', (e) => {
      e.stopPropagation();
      if (state.open) closeDropdown(); else openDropdown();
    });
    ui.markAll.addEventListener('click', markAllRead);
    ui.retry.addEventListener('click', () => {
      state.listError = null;
      refreshAll();
    });
    ui.scroll.addEventListener('scroll', fillViewport, { passive: true });

    ui.list.addEventListener('click', (e) => {
      const li = e.target.closest('li.item');
      if (!li) return;
      const id = li.dataset.id;
      const button = e.target.closest('button[data-action]');
      if (button) {
        e.stopPropagation();
        setReadState(id, button.dataset.action);
        return;
      }
      const n = state.items.get(id);
      if (!n) return;
      const link = safeUrl(n.action_url);
      if (!n.read_at) setReadState(id, 'read');
      if (link) window.location.assign(link);
    });

    document.addEventListener('click', (e) => {
      if (state.open && !ui.dropdown.contains(e.target) && !ui.bell.contains(e.target)) closeDropdown();
    });
    document.addEventListener('keydown', (e) => {
      if (e.key === 'Escape' && state.open) {
        closeDropdown();
        ui.bell.focus();
      }
    });

    // Relative times age; refresh them while the list is visible.
    setInterval(() => { if (state.open) render(); }, 30000);
  }

  function main() {
    wire();
    render();
    if (!H.token) {
      ui.bell.disabled = true; // herald.js explains, in the banner
      return;
    }
    const sub = H.sub;
    if (sub) {
      ui.avatar.textContent = sub.slice(0, 2);
      ui.greeting.textContent = 'Welcome back, ' + sub.charAt(0).toUpperCase() + sub.slice(1);
      ui.howto.textContent = ui.howto.textContent
        .replace('$API', H.API)
        .replace('["alice"]', JSON.stringify([sub]));
    } else {
      ui.howto.textContent = ui.howto.textContent.replace('$API', H.API);
    }

    refreshAll(); // the badge shows even while the gateway is unreachable
  }

  main();
})();
