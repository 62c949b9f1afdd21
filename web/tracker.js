/*
 * Herald order tracker — one order's progress on the /demo dashboard, advancing live.
 *
 * Plain ES2020, no dependencies, no build step. Needs herald.js (loaded first).
 *
 *   The order id comes from the page URL: /demo?order=<id>. Without one, the panel shows
 *   how to create an order with curl.
 *
 *   REST  GET /v1/orders/{id}  (user token; 404 unless the token's sub is the customer)
 *         -> {order_id, customer_id, status, data, created_at, updated_at,
 *             timeline: [{status, at, note, data}]}   (oldest first)
 *   Stream  topic `order:{id}` (the customer may stream it without a `topics` claim). It is
 *           added to the page's one stream once the order has loaded.
 *         order.status_changed  {order_id, customer_id, from, status, note, data, at}
 *
 * Consistency rules
 *   - Timeline entries are keyed by status + `at`: a replayed or refetched entry is never
 *     shown twice.
 *   - A REST snapshot and the events we hold are merged, never replaced: the snapshot's
 *     timeline (in server order) followed by the entries it does not have yet (events are
 *     newer than the snapshot they race with). The current status is the last entry's.
 *   - On resync (herald.reset, or a stream that could not resume) the order is refetched.
 */
(() => {
  'use strict';

  const H = window.Herald;
  const { api, el, clockTime, relativeTime, time } = H;

  const STEPS = [
    ['placed', 'Placed'],
    ['paid', 'Paid'],
    ['packed', 'Packed'],
    ['shipped', 'Shipped'],
    ['out_for_delivery', 'Out for delivery'],
    ['delivered', 'Delivered'],
  ];
  const STEP_INDEX = new Map(STEPS.map(([s], i) => [s, i]));
  const TERMINAL = { cancelled: 'Cancelled', refunded: 'Refunded' };
  const LABELS = Object.assign(Object.fromEntries(STEPS), TERMINAL);
  const label = (s) => LABELS[s] || String(s || '').replace(/_/g, ' ');

  const root = document.querySelector('[data-testid="order-tracker"]');
  if (!root) return;
  const $ = (id) => document.getElementById(id);
  const ui = {
    title: $('tracker-title'),
    sub: $('tracker-sub'),
    pill: $('order-status'),
    live: $('tracker-live'),
    body: $('tracker-body'),
  };

  const rawId = new URLSearchParams(window.location.search).get('order');
  const orderId = rawId === null || rawId.trim() === '' ? null : H.topicKey(rawId.trim());
  const topic = orderId ? 'order:' + orderId : null;
  const EXAMPLE_ID = 'A-' + (1000 + Math.floor(Math.random() * 9000)); // for the curl example

  const state = {
    phase: !rawId || !rawId.trim() ? 'none' : orderId ? 'loading' : 'invalid',
    order: null, // the order without its timeline
    timeline: [], // [{status, at, note, data, key}] oldest first
    error: null,
    liveRefused: false,
    fresh: null, // the status that just arrived live (animated once)
  };

  // ------------------------------------------------------------------ model

  /** `at` as the server prints it, up to trailing zeros of the fraction and `Z` vs `+00:00`. */
  function normAt(at) {
    const m = /^(.+T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]00:00)$/i.exec(String(at || ''));
    if (!m) return String(at || '');
    const frac = (m[2] || '').replace(/0+$/, '');
    return m[1] + (frac ? '.' + frac : '') + 'Z';
  }

  function entry(raw) {
    if (!raw || typeof raw.status !== 'string') return null;
    return {
      status: raw.status,
      at: raw.at || null,
      note: typeof raw.note === 'string' && raw.note ? raw.note : null,
      data: raw.data && typeof raw.data === 'object' ? raw.data : {},
      key: raw.status + '|' + normAt(raw.at),
    };
  }

  function currentStatus() {
    const last = state.timeline[state.timeline.length - 1];
    return last ? last.status : state.order ? state.order.status : null;
  }

  function applySnapshot(o) {
    if (!o || o.order_id !== orderId) return;
    const base = (Array.isArray(o.timeline) ? o.timeline : []).map(entry).filter(Boolean);
    const seen = new Set();
    const merged = [];
    for (const e of base) {
      if (!seen.has(e.key)) {
        seen.add(e.key);
        merged.push(e);
      }
    }
    // Entries we hold that the snapshot lacks came from events newer than it.
    for (const e of state.timeline) {
      if (!seen.has(e.key)) {
        seen.add(e.key);
        merged.push(e);
      }
    }
    state.timeline = merged;
    const prev = state.order;
    state.order = {
      order_id: o.order_id,
      customer_id: o.customer_id,
      status: o.status,
      data: o.data && typeof o.data === 'object' ? o.data : {},
      created_at: o.created_at,
      updated_at: prev && time(prev.updated_at) > time(o.updated_at) ? prev.updated_at : o.updated_at,
    };
    state.phase = 'ready';
    state.error = null;
  }

  function onStatusChanged(env) {
    const d = env && env.data;
    if (!d || d.order_id !== orderId || (env.topic && env.topic !== topic)) return;
    if (!state.order) {
      refresh();
      return;
    }
    const e = entry(d);
    if (!e || state.timeline.some((t) => t.key === e.key)) return;
    state.timeline.push(e);
    state.order.status = e.status;
    if (time(e.at) > time(state.order.updated_at)) state.order.updated_at = e.at;
    state.fresh = e.status;
    render();
  }

  // ------------------------------------------------------------------ REST

  let inflight = null;
  let again = false;

  /** Fetches the order (single-flight; a request made while one is in flight runs after it). */
  function refresh() {
    if (!orderId || H.fatal) return Promise.resolve();
    if (inflight) {
      again = true;
      return inflight;
    }
    inflight = (async () => {
      do {
        again = false;
        try {
          applySnapshot(await api('GET', '/v1/orders/' + encodeURIComponent(orderId)));
          // Follow the order live, now that we know we may read it.
          H.stream.addTopic(topic, {
            onRefused: () => {
              state.liveRefused = true;
              renderLive();
            },
          });
        } catch (e) {
          if (H.fatal) return;
          if (state.phase !== 'ready') {
            state.phase = e instanceof H.HttpError && e.status === 404 ? 'not-found' : 'error';
            state.error = e.message;
          } else {
            H.toast('Couldn\'t refresh the order.');
          }
        }
        render();
      } while (again);
    })().finally(() => {
      inflight = null;
    });
    return inflight;
  }

  H.stream.on('order.status_changed', onStatusChanged);
  H.stream.onResync(topic, () => refresh());
  H.stream.onState(renderLive);

  // ------------------------------------------------------------------ render

  const ICONS = {
    check: '<svg viewBox="0 0 16 16" width="14" height="14" aria-hidden="true"><path d="M3.5 8.5 6.5 11.5 12.5 4.5" fill="none" stroke="currentColor" stroke-width="2.2" stroke-linecap="round" stroke-linejoin="round"/></svg>',
    box: '<svg viewBox="0 0 48 48" width="48" height="48" aria-hidden="true"><circle cx="24" cy="24" r="22" fill="#eef2ff"/><path d="M14 19.5 24 14l10 5.5v10.2L24 35l-10-5.3z" fill="none" stroke="#6366f1" stroke-width="1.8" stroke-linejoin="round"/><path d="M14 19.5 24 25l10-5.5M24 25v10" fill="none" stroke="#6366f1" stroke-width="1.8" stroke-linejoin="round"/></svg>',
    truck: '<svg viewBox="0 0 24 24" width="18" height="18" aria-hidden="true"><path d="M3 6.5h11v9H3zM14 9.5h3.6l3.4 3.4v2.6h-7z" fill="none" stroke="currentColor" stroke-width="1.7" stroke-linejoin="round"/><circle cx="7" cy="17" r="1.8" fill="#fff" stroke="currentColor" stroke-width="1.7"/><circle cx="17" cy="17" r="1.8" fill="#fff" stroke="currentColor" stroke-width="1.7"/></svg>',
    stop: '<svg viewBox="0 0 24 24" width="18" height="18" aria-hidden="true"><circle cx="12" cy="12" r="8.5" fill="none" stroke="currentColor" stroke-width="1.7"/><path d="M8.5 15.5l7-7" stroke="currentColor" stroke-width="1.7" stroke-linecap="round"/></svg>',
  };

  function renderLive() {
    const live = !!topic && H.stream.isLive(topic);
    root.dataset.live = String(live);
    const show = state.phase === 'ready';
    ui.live.hidden = !show;
    if (!show) return;
    ui.live.dataset.state = live ? 'live' : state.liveRefused ? 'off' : 'waiting';
    ui.live.lastChild.textContent = live ? 'Live' : state.liveRefused ? 'Not live' : 'Connecting';
    ui.live.title = live ? 'Updates arrive live on order:' + orderId
      : state.liveRefused ? 'This token may not stream order:' + orderId : 'Waiting for the live connection';
  }

  function formatMoney(amount, currency) {
    const n = typeof amount === 'number' ? amount : Number(amount);
    if (!Number.isFinite(n)) return String(amount);
    if (typeof currency === 'string' && /^[A-Za-z]{3}$/.test(currency)) {
      try {
        return new Intl.NumberFormat(undefined, { style: 'currency', currency: currency.toUpperCase() }).format(n);
      } catch (_) { /* unknown currency */ }
    }
    return n.toFixed(2);
  }

  /** A few primitive fields of a data object, as "Key: value" strings. */
  function dataFacts(data, skip, max) {
    const out = [];
    for (const [k, v] of Object.entries(data || {})) {
      if (skip.includes(k) || v === null || typeof v === 'object') continue;
      const key = k.replace(/[_-]+/g, ' ');
      out.push(key.charAt(0).toUpperCase() + key.slice(1) + ': ' + String(v));
      if (out.length >= max) break;
    }
    return out;
  }

  function emptyState(title, html, code) {
    const box = el('div', 'panel-empty');
    const icon = el('div', 'panel-empty-icon');
    icon.innerHTML = ICONS.box;
    const t = el('p', 'panel-empty-title', title);
    const p = el('p', 'panel-empty-text');
    p.innerHTML = html; // static strings; ids are escaped by the caller
    box.append(icon, t, p);
    if (code) box.append(el('pre', 'code', code));
    return box;
  }

  function escapeHtml(s) {
    return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', '\'': '&#39;' }[c]));
  }

  let stepsEl = null; // the stepper, kept across renders so that its transitions play
  let stepEls = null;

  function render() {
    renderLive();
    const phase = state.phase;
    ui.pill.hidden = phase !== 'ready';
    if (phase !== 'ready') {
      stepsEl = null;
      ui.title.textContent = 'Order tracking';
      ui.sub.textContent = orderId ? 'Order ' + orderId : 'Follow a delivery as it happens';
      ui.body.replaceChildren(renderPlaceholder(phase));
      return;
    }

    const o = state.order;
    const status = currentStatus();
    const terminal = Object.prototype.hasOwnProperty.call(TERMINAL, status);
    root.dataset.status = status || '';

    ui.title.textContent = 'Order #' + o.order_id;
    const facts = [];
    if (o.created_at) facts.push('Placed ' + clockTime(o.created_at));
    if (o.data.total !== undefined && o.data.total !== null && typeof o.data.total !== 'object') {
      facts.push('Total ' + formatMoney(o.data.total, o.data.currency));
    }
    if (Number.isFinite(Number(o.data.items)) && typeof o.data.items !== 'object') {
      const n = Number(o.data.items);
      facts.push(n + (n === 1 ? ' item' : ' items'));
    }
    ui.sub.textContent = facts.join(' · ');
    ui.pill.textContent = label(status);
    ui.pill.dataset.status = status || '';
    ui.pill.dataset.tone = terminal ? 'stop' : status === 'delivered' ? 'ok' : 'progress';

    if (!stepsEl || !ui.body.contains(stepsEl)) {
      ui.body.replaceChildren();
      stepsEl = el('ol', 'steps');
      stepsEl.setAttribute('aria-label', 'Order progress');
      stepEls = STEPS.map(([s, text]) => {
        const li = el('li', 'step');
        li.dataset.testid = 'order-step';
        li.dataset.status = s;
        const dot = el('span', 'step-dot');
        dot.setAttribute('aria-hidden', 'true');
        const name = el('span', 'step-label', text);
        const when = el('time', 'step-time');
        li.append(dot, name, when);
        li._ui = { dot, when };
        return li;
      });
      stepsEl.append(...stepEls);
      const now = el('div', 'order-now');
      now.id = 'order-now';
      const history = el('div', 'order-history');
      history.append(el('h3', 'order-history-title', 'History'));
      const list = el('ol', 'history');
      list.id = 'order-history';
      history.append(list);
      ui.body.append(stepsEl, now, history);
    }

    // Steps: reached ones are done, the current one is highlighted, the rest are to do.
    const reachedAt = new Map();
    let reached = -1;
    for (const e of state.timeline) {
      const i = STEP_INDEX.get(e.status);
      if (i === undefined) continue;
      if (!reachedAt.has(e.status)) reachedAt.set(e.status, e);
      reached = Math.max(reached, i);
    }
    const current = terminal ? -1 : STEP_INDEX.has(status) ? STEP_INDEX.get(status) : reached;
    stepsEl.classList.toggle('halted', terminal);
    stepsEl.style.setProperty('--progress', String(Math.max(0, terminal ? reached : current) / (STEPS.length - 1)));
    stepEls.forEach((li, i) => {
      const s = STEPS[i][0];
      const st = i === current ? 'current' : (terminal ? i <= reached : i < current) ? 'done' : 'todo';
      if (li.dataset.state !== st) li.dataset.state = st;
      li.setAttribute('aria-current', st === 'current' ? 'step' : 'false');
      const e = reachedAt.get(s);
      const shown = st !== 'todo' && e && e.at ? clockTime(e.at) : '';
      if (li._ui.when.textContent !== shown) li._ui.when.textContent = shown;
      li._ui.when.dateTime = st !== 'todo' && e && e.at ? e.at : '';
      li._ui.dot.innerHTML = st === 'todo' ? '' : st === 'current' && s !== 'delivered' ? '<span class="step-pulse"></span>' : ICONS.check;
      if (state.fresh === s) {
        li.classList.remove('just');
        void li.offsetWidth; // restart the animation
        li.classList.add('just');
      }
    });

    // The current status, with its time and note.
    const last = state.timeline[state.timeline.length - 1] || null;
    const now = $('order-now');
    now.dataset.tone = terminal ? 'stop' : status === 'delivered' ? 'ok' : 'progress';
    now.replaceChildren();
    const icon = el('span', 'order-now-icon');
    icon.innerHTML = terminal ? ICONS.stop : status === 'delivered' ? ICONS.check : ICONS.truck;
    const main = el('div', 'order-now-main');
    const head = el('div', 'order-now-head');
    head.append(el('strong', null, terminal ? 'Order ' + label(status).toLowerCase() : label(status)));
    if (last && last.at) {
      const t = el('time', 'order-now-time', clockTime(last.at) + ' · ' + relativeTime(last.at));
      t.dateTime = last.at;
      t.dataset.testid = 'order-status-time';
      head.append(t);
    }
    main.append(head);
    const note = el('div', 'order-now-note', last && last.note ? last.note : defaultNote(status));
    note.dataset.testid = 'order-status-note';
    main.append(note);
    const facts2 = last ? dataFacts(last.data, [], 3) : [];
    if (facts2.length) {
      const chips = el('div', 'chips');
      for (const f of facts2) chips.append(el('span', 'chip', f));
      main.append(chips);
    }
    now.append(icon, main);

    // History, newest first.
    const list = $('order-history');
    list.replaceChildren();
    for (let i = state.timeline.length - 1; i >= 0; i--) {
      const e = state.timeline[i];
      const li = el('li', 'history-item');
      li.dataset.status = e.status;
      if (i === state.timeline.length - 1) li.classList.add('latest');
      const text = el('div', 'history-main');
      text.append(el('span', 'history-status', label(e.status)));
      if (e.note) text.append(el('span', 'history-note', e.note));
      const t = el('time', 'history-time', e.at ? clockTime(e.at) : '');
      if (e.at) t.dateTime = e.at;
      li.append(el('span', 'history-dot'), text, t);
      list.append(li);
    }
    state.fresh = null;
  }

  function defaultNote(status) {
    switch (status) {
      case 'placed': return 'We\'ve received your order.';
      case 'paid': return 'Payment confirmed.';
      case 'packed': return 'Your items are packed and ready to ship.';
      case 'shipped': return 'Your parcel is on its way.';
      case 'out_for_delivery': return 'Your parcel is out for delivery today.';
      case 'delivered': return 'Your parcel has been delivered.';
      case 'cancelled': return 'This order was cancelled.';
      case 'refunded': return 'This order was refunded.';
      default: return '';
    }
  }

  function renderPlaceholder(phase) {
    if (phase === 'loading') {
      const box = el('div', 'panel-loading');
      box.append(el('span', 'spinner'), document.createTextNode(' Loading order…'));
      return box;
    }
    if (phase === 'invalid') {
      return emptyState('That order id isn\'t valid',
        'Order ids are 1–200 characters of <code>A-Z a-z 0-9 . _ ~ @ : -</code>.');
    }
    if (phase === 'not-found') {
      return emptyState('Order ' + orderId + ' not found',
        'There is no order <code>' + escapeHtml(orderId) + '</code>, or it belongs to another customer.');
    }
    if (phase === 'error') {
      const box = emptyState('Couldn\'t load order ' + orderId, escapeHtml(state.error || 'The request failed.'));
      const retry = el('button', 'link-btn', 'Retry');
      retry.type = 'button';
      retry.addEventListener('click', () => {
        state.phase = 'loading';
        render();
        refresh();
      });
      box.append(retry);
      return box;
    }
    // No ?order= in the URL: explain how to get one.
    const sub = H.sub || 'alice';
    const id = EXAMPLE_ID;
    const auth = '  -H "Authorization: Bearer $SVC_TOKEN" \\\n' +
      '  -H \'content-type: application/json\' \\\n';
    const code = 'curl -X PUT ' + H.API + '/v1/orders/' + id + ' \\\n' + auth +
      '  -d \'{"customer_id":' + JSON.stringify(sub) + ',"data":{"total":"42.00","currency":"USD"}}\'\n\n' +
      'curl -X POST ' + H.API + '/v1/orders/' + id + '/status \\\n' + auth +
      '  -d \'{"status":"paid","note":"Card accepted"}\'';
    return emptyState('Track an order live',
      'Create an order for <strong>' + escapeHtml(sub) + '</strong>, then open this page with ' +
      '<code>?order=' + id + '</code>: every status change moves the tracker the moment it happens.', code);
  }

  // ------------------------------------------------------------------ start

  // Relative times age.
  setInterval(() => { if (state.phase === 'ready') render(); }, 30000);

  render();
  if (state.phase === 'loading' && H.token) {
    H.stream.hold(refresh()); // the first stream waits for this, to carry order:{id} from the start
  } else if (!H.token && state.phase === 'loading') {
    state.phase = 'error';
    state.error = 'No token.';
    render();
  }
})();
