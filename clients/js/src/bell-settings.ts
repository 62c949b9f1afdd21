/**
 * The bell's settings view: the "Enable desktop notifications" switch (this
 * browser's Web Push subscription, `WebPush`) and the user's preferences per
 * category and channel (`UserPreferences`), with required categories locked.
 *
 * It owns its DOM (inside the bell's shadow root) and nothing else: the bell
 * creates the stores, hands them over, and shows or hides the view. Every
 * control is a `<button role="switch">`, so Tab reaches it and Space or Enter
 * flips it; a locked one stays focusable (`aria-disabled`) so its reason can
 * be read.
 */
import type { CategoryPreference, Channel } from './client.js';
import type { UserPreferences } from './preferences.js';
import type { PushState, WebPush } from './push.js';

const LOCK_ICON = '<svg viewBox="0 0 24 24" width="12" height="12" aria-hidden="true"><rect x="5" y="11" width="14" height="10" rx="2" fill="none" stroke="currentColor" stroke-width="2"/><path d="M8 11V8a4 4 0 0 1 8 0v3" fill="none" stroke="currentColor" stroke-width="2"/></svg>';

function el<K extends keyof HTMLElementTagNameMap>(tag: K, className?: string, text?: string): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function makeSwitch(testid: string): HTMLButtonElement {
  const b = el('button', 'switch');
  b.type = 'button';
  b.setAttribute('role', 'switch');
  b.setAttribute('aria-checked', 'false');
  b.dataset.testid = testid;
  b.part.add('switch');
  b.append(el('span', 'knob'));
  return b;
}

/** `comment` → `Comment`, `billing.invoice` → `Billing invoice`. */
export function categoryLabel(name: string): string {
  const words = name.replace(/[._-]+/g, ' ').trim();
  return words ? words.charAt(0).toUpperCase() + words.slice(1) : name;
}

const CHANNEL_NAMES: Record<Channel, string> = { in_app: 'in app', web_push: 'desktop' };

interface CategoryRow {
  tr: HTMLTableRowElement;
  name: HTMLElement;
  lock: HTMLElement;
  switches: Record<Channel, HTMLButtonElement>;
}

export class SettingsPanel {
  readonly root: HTMLElement;
  private prefs: UserPreferences | null = null;
  private push: WebPush | null = null;
  private pushState: PushState | null = null;
  private pushBusy = false;
  private pushGen = 0;
  private unsub: (() => void) | null = null;
  private readonly rows = new Map<string, CategoryRow>();
  private labels: (name: string) => string = categoryLabel;
  private readonly ui: {
    pushGroup: HTMLElement;
    pushSwitch: HTMLButtonElement;
    pushHint: HTMLElement;
    pushError: HTMLElement;
    table: HTMLTableElement;
    pushCol: HTMLTableCellElement;
    body: HTMLTableSectionElement;
    empty: HTMLElement;
    loading: HTMLElement;
    error: HTMLElement;
  };

  constructor() {
    const root = el('div', 'settings');
    root.dataset.testid = 'settings';
    root.part.add('settings');
    root.hidden = true;

    // This browser: Web Push.
    const pushGroup = el('section', 'group');
    pushGroup.dataset.testid = 'push-section';
    pushGroup.hidden = true;
    const pushRow = el('div', 'setting');
    const pushText = el('div', 'setting-text');
    const pushTitle = el('span', 'setting-title', 'Enable desktop notifications');
    pushTitle.id = 'herald-push-title';
    const pushHint = el('span', 'setting-hint');
    pushHint.id = 'herald-push-hint';
    pushHint.dataset.testid = 'push-hint';
    pushText.append(pushTitle, pushHint);
    const pushSwitch = makeSwitch('push-switch');
    pushSwitch.setAttribute('aria-labelledby', pushTitle.id);
    pushSwitch.setAttribute('aria-describedby', pushHint.id);
    pushRow.append(pushText, pushSwitch);
    const pushError = el('div', 'alert');
    pushError.dataset.testid = 'push-error';
    pushError.setAttribute('role', 'alert');
    pushError.hidden = true;
    pushGroup.append(pushRow, pushError);

    // The user: categories × channels.
    const prefGroup = el('section', 'group');
    const heading = el('h3', 'group-title', 'What reaches you');
    heading.id = 'herald-prefs-title';
    const table = el('table', 'prefs');
    table.dataset.testid = 'preferences';
    table.setAttribute('aria-labelledby', heading.id);
    const head = el('thead');
    const hr = el('tr');
    const c0 = el('th', undefined, 'Category');
    const c1 = el('th', undefined, 'In app');
    const c2 = el('th', undefined, 'Desktop');
    for (const c of [c0, c1, c2]) c.scope = 'col';
    c2.title = 'Pushed to your browsers and devices when the app is closed';
    hr.append(c0, c1, c2);
    head.append(hr);
    const body = el('tbody');
    table.append(head, body);
    const empty = el('p', 'setting-hint pad', 'No categories to choose from yet.');
    empty.dataset.testid = 'preferences-empty';
    empty.hidden = true;
    const loading = el('div', 'note');
    loading.append(el('span', 'spinner'), document.createTextNode('Loading…'));
    loading.hidden = true;
    const error = el('div', 'alert');
    error.dataset.testid = 'preferences-error';
    error.setAttribute('role', 'alert');
    error.hidden = true;
    prefGroup.append(heading, error, table, empty, loading);

    root.append(pushGroup, prefGroup);
    this.root = root;
    this.ui = { pushGroup, pushSwitch, pushHint, pushError, table, pushCol: c2, body, empty, loading, error };

    pushSwitch.addEventListener('click', () => void this.togglePush());
    body.addEventListener('click', (e) => {
      const b = (e.target as Element).closest('button[role="switch"]') as HTMLButtonElement | null;
      if (b) this.onCategorySwitch(b);
    });
  }

  /** The stores to show (null: none yet). */
  attach(prefs: UserPreferences | null, push: WebPush | null): void {
    this.unsub?.();
    this.unsub = null;
    this.prefs = prefs;
    this.push = push;
    this.pushState = null;
    this.pushGen++;
    for (const r of this.rows.values()) r.tr.remove();
    this.rows.clear();
    if (prefs) {
      this.unsub = prefs.onChange((change) => {
        if (change.refused) this.showError(`Couldn't change “${this.labels(change.refused.category)}”: ${change.refused.message}`);
        this.render();
      });
    }
    this.render();
  }

  set categoryLabels(fn: (name: string) => string) {
    this.labels = fn;
    for (const r of this.rows.values()) r.tr.remove();
    this.rows.clear();
    this.render();
  }

  get visible(): boolean {
    return !this.root.hidden;
  }

  /** Shows the view, fetching the current state. */
  show(): void {
    this.root.hidden = false;
    this.ui.error.hidden = true;
    this.ui.pushError.hidden = true;
    void this.prefs?.refresh();
    void this.readPush();
    this.render();
  }

  hide(): void {
    this.root.hidden = true;
  }

  /** The first control, for focus when the view opens. */
  firstControl(): HTMLElement | null {
    const controls = Array.from(this.root.querySelectorAll<HTMLButtonElement>('button[role="switch"]'));
    return controls.find((b) => !b.disabled && !b.closest('[hidden]')) ?? null;
  }

  // ------------------------------------------------------------- Web Push

  private async readPush(): Promise<void> {
    const push = this.push;
    const gen = ++this.pushGen;
    if (!push) {
      this.pushState = null;
      this.renderPush();
      return;
    }
    let state: PushState;
    try {
      state = await push.state();
    } catch {
      state = { status: 'off' };
    }
    if (gen !== this.pushGen || this.pushBusy) return;
    this.pushState = state;
    this.renderPush();
  }

  private async togglePush(): Promise<void> {
    const push = this.push;
    const s = this.pushState?.status;
    if (!push || this.pushBusy || (s !== 'on' && s !== 'off')) return;
    this.pushBusy = true;
    this.pushGen++;
    this.ui.pushError.hidden = true;
    this.renderPush(s === 'on' ? 'Turning off…' : 'Asking your browser…');
    try {
      this.pushState = s === 'on' ? await push.disable() : await push.enable();
    } catch (err) {
      this.ui.pushError.textContent = err instanceof Error ? err.message : String(err);
      this.ui.pushError.hidden = false;
      this.pushBusy = false;
      await this.readPush();
      return;
    }
    this.pushBusy = false;
    this.renderPush();
  }

  private renderPush(busyText?: string): void {
    const { pushGroup, pushSwitch, pushHint, pushCol } = this.ui;
    const state = this.pushState;
    pushGroup.hidden = !this.push;
    const serverHasPush = !state || state.status !== 'unavailable';
    pushCol.hidden = !serverHasPush;
    for (const r of this.rows.values()) (r.switches.web_push.parentElement as HTMLElement).hidden = !serverHasPush;
    if (!this.push) return;
    const status = state?.status ?? null;
    pushGroup.dataset.status = this.pushBusy ? 'busy' : status ?? 'loading';
    pushSwitch.setAttribute('aria-checked', String(status === 'on'));
    const usable = !this.pushBusy && (status === 'on' || status === 'off');
    pushSwitch.setAttribute('aria-disabled', String(!usable));
    pushSwitch.setAttribute('aria-busy', String(this.pushBusy));
    pushSwitch.disabled = !(status === 'on' || status === 'off') && !this.pushBusy;
    pushHint.textContent = busyText
      ?? (status === 'on' ? "On for this browser: you'll be notified even when this tab is closed."
        : status === 'off' ? 'Get a system notification when this tab is closed.'
          : status === null ? 'Checking this browser…'
            : state?.reason ?? '');
  }

  // ------------------------------------------------------------- categories

  private onCategorySwitch(b: HTMLButtonElement): void {
    const prefs = this.prefs;
    const category = b.dataset.category;
    const channel = b.dataset.channel as Channel | undefined;
    if (!prefs || !category || !channel) return;
    const c = prefs.categories.get(category);
    if (!c) return;
    if (c.required) {
      this.showError(`“${this.labels(category)}” is required: it can't be turned off.`);
      return;
    }
    if (prefs.pending.has(`${category}/${channel}`)) return;
    this.ui.error.hidden = true;
    prefs.set(category, channel, !c[channel]).catch(() => { /* shown by the listener */ });
  }

  private showError(text: string): void {
    this.ui.error.textContent = text;
    this.ui.error.hidden = false;
  }

  private createRow(name: string): CategoryRow {
    const tr = el('tr');
    tr.dataset.testid = 'category';
    tr.dataset.category = name;
    const th = el('th');
    th.scope = 'row';
    const label = el('span', 'cat-name', this.labels(name));
    label.dataset.testid = 'category-name';
    const lock = el('span', 'lock');
    lock.dataset.testid = 'required';
    lock.innerHTML = LOCK_ICON; // a constant
    lock.append(document.createTextNode('Required'));
    lock.hidden = true;
    th.append(label, lock);
    tr.append(th);
    const switches = {} as Record<Channel, HTMLButtonElement>;
    for (const channel of ['in_app', 'web_push'] as const) {
      const td = el('td');
      const s = makeSwitch(channel);
      s.dataset.category = name;
      s.dataset.channel = channel;
      s.setAttribute('aria-label', `${this.labels(name)}: ${CHANNEL_NAMES[channel]}`);
      td.append(s);
      tr.append(td);
      switches[channel] = s;
    }
    return { tr, name: label, lock, switches };
  }

  private updateRow(row: CategoryRow, name: string, c: CategoryPreference, pending: Set<string>): void {
    row.tr.classList.toggle('required', c.required);
    row.tr.dataset.required = String(c.required);
    row.lock.hidden = !c.required;
    for (const channel of ['in_app', 'web_push'] as const) {
      const s = row.switches[channel];
      const busy = pending.has(`${name}/${channel}`);
      s.setAttribute('aria-checked', String(c[channel]));
      s.setAttribute('aria-disabled', String(c.required));
      s.setAttribute('aria-busy', String(busy));
      s.title = c.required ? 'Required by the service: it cannot be turned off' : '';
    }
  }

  render(): void {
    this.renderPush();
    const prefs = this.prefs;
    const { body, empty, loading, table } = this.ui;
    if (!prefs) {
      table.hidden = true;
      loading.hidden = false;
      return;
    }
    const list = prefs.list();
    const keep = new Set<string>();
    let prev: HTMLTableRowElement | null = null;
    for (const [name, c] of list) {
      keep.add(name);
      let row = this.rows.get(name);
      if (!row) {
        row = this.createRow(name);
        this.rows.set(name, row);
      }
      this.updateRow(row, name, c, prefs.pending);
      const wanted: ChildNode | null = prev ? prev.nextSibling : body.firstChild;
      if (wanted !== row.tr) body.insertBefore(row.tr, wanted);
      prev = row.tr;
    }
    for (const [name, row] of this.rows) {
      if (!keep.has(name)) {
        row.tr.remove();
        this.rows.delete(name);
      }
    }
    const serverHasPush = !this.pushState || this.pushState.status !== 'unavailable';
    for (const r of this.rows.values()) (r.switches.web_push.parentElement as HTMLElement).hidden = !serverHasPush;
    loading.hidden = prefs.loaded || !!prefs.error;
    table.hidden = !prefs.loaded || list.length === 0;
    empty.hidden = !(prefs.loaded && list.length === 0);
    if (prefs.error && this.ui.error.hidden) this.showError(prefs.error);
  }
}
