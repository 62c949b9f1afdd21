/**
 * Snooze in the bell: the menu a row's "Snooze" button opens (`SnoozeMenu`)
 * and the "Snoozed" view (`SnoozedPanel`), which lists `status=snoozed` with
 * an "Unsnooze" button each.
 *
 * Both own their DOM (inside the bell's shadow root) and nothing else: the
 * bell hands them the `Inbox` and says when to show them. The menu is a
 * `role="menu"` of buttons in the dropdown (over the list, so the list's
 * scrolling never cuts it off): the arrow keys, Home and End move, Enter or
 * Space picks, Escape closes it and gives focus back to its button, Tab
 * closes it and moves on from its button, and focus leaving it (a click
 * elsewhere) closes it.
 */
import { entrySummary } from './group.js';
import type { Inbox } from './inbox.js';

/** One choice of the snooze menu. */
export interface SnoozeOption {
  /** What the menu says, e.g. "For 1 hour". */
  label: string;
  /** When the notification comes back, counted from `now` (at most 30 days ahead). */
  until(now: Date): Date;
}

/** Today plus `days`, at `hour`:00 local time. */
function dayAt(now: Date, days: number, hour: number): Date {
  const d = new Date(now);
  d.setDate(d.getDate() + days);
  d.setHours(hour, 0, 0, 0);
  return d;
}

/** For 1 hour; until tomorrow, 9:00; until next Monday, 9:00. */
export const DEFAULT_SNOOZE_OPTIONS: readonly SnoozeOption[] = [
  { label: 'For 1 hour', until: (now) => new Date(now.getTime() + 3_600_000) },
  { label: 'Until tomorrow', until: (now) => dayAt(now, 1, 9) },
  { label: 'Until next week', until: (now) => dayAt(now, (8 - now.getDay()) % 7 || 7, 9) },
];

/** "Tue 9:00 AM" (in the user's locale). */
export function snoozeTime(when: Date | string): string {
  const d = typeof when === 'string' ? new Date(when) : when;
  return d.toLocaleString(undefined, { weekday: 'short', hour: 'numeric', minute: '2-digit' });
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, className?: string, text?: string): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

export class SnoozeMenu {
  readonly root: HTMLElement;
  options: readonly SnoozeOption[] = DEFAULT_SNOOZE_OPTIONS;
  private anchor: HTMLButtonElement | null = null;
  private pick: ((until: Date) => void) | null = null;

  constructor() {
    const root = el('div', 'menu');
    root.dataset.testid = 'snooze-menu';
    root.part.add('snooze-menu');
    root.setAttribute('role', 'menu');
    root.setAttribute('aria-label', 'Snooze until');
    root.hidden = true;
    this.root = root;
    root.addEventListener('click', (e) => {
      const item = (e.target as Element).closest('button[data-option]') as HTMLButtonElement | null;
      const option = item ? this.options[Number(item.dataset.option)] : undefined;
      const pick = this.pick;
      if (!option || !pick) return;
      this.close();
      pick(option.until(new Date()));
    });
    root.addEventListener('keydown', (e) => this.onKey(e));
    root.addEventListener('focusout', (e) => {
      const to = e.relatedTarget as Node | null;
      // Its own button toggles it (its click follows).
      if (!(to && (root.contains(to) || to === this.anchor))) this.close();
    });
  }

  /** Opens at `anchor` (a row's Snooze button), or closes if open there; `pick` gets the time chosen. */
  toggle(anchor: HTMLButtonElement, pick: (until: Date) => void): void {
    const same = this.anchor === anchor;
    this.close();
    if (same) return;
    const now = new Date();
    const items = this.options.map((o, i) => {
      const b = el('button', 'menu-item');
      b.type = 'button';
      b.tabIndex = -1;
      b.setAttribute('role', 'menuitem');
      b.dataset.option = String(i);
      b.dataset.testid = 'snooze-option';
      b.append(el('span', undefined, o.label), el('span', 'menu-when', snoozeTime(o.until(now))));
      return b;
    });
    this.root.replaceChildren(...items);
    this.anchor = anchor;
    this.pick = pick;
    anchor.setAttribute('aria-expanded', 'true');
    this.root.hidden = false;
    this.place();
    items[0]?.focus({ preventScroll: true });
  }

  /**
   * Puts the open menu under its button, or above it when the dropdown (its
   * positioned parent) would cut it off below; closes it when the button is gone.
   */
  place(): void {
    const anchor = this.anchor;
    if (!anchor) return;
    const box = this.root.offsetParent;
    if (!anchor.isConnected || !box) {
      this.close();
      return;
    }
    const a = anchor.getBoundingClientRect();
    const b = box.getBoundingClientRect();
    const h = this.root.offsetHeight;
    const below = a.bottom + 4 + h <= b.bottom || a.top - 4 - h < b.top;
    this.root.style.top = `${(below ? a.bottom + 4 : a.top - 4 - h) - b.top}px`;
    this.root.style.right = `${b.right - a.right}px`;
  }

  close(): void {
    const anchor = this.anchor;
    this.anchor = null;
    this.pick = null;
    this.root.hidden = true;
    anchor?.setAttribute('aria-expanded', 'false');
  }

  private onKey(e: KeyboardEvent): void {
    e.stopPropagation(); // the list's arrow keys and the dropdown's Escape stay out of it
    const items = Array.from(this.root.querySelectorAll<HTMLButtonElement>('button[data-option]'));
    const i = items.indexOf(e.target as HTMLButtonElement);
    const moves: Record<string, number> = { ArrowDown: i + 1, ArrowUp: i - 1, Home: 0, End: items.length - 1 };
    if (e.key in moves) {
      e.preventDefault();
      const n = items.length;
      items[((moves[e.key] as number) + n) % n]?.focus();
    } else if (e.key === 'Escape' || e.key === 'Tab') {
      // Back to its button; for Tab, the browser then moves on from it (or back, with Shift).
      if (e.key === 'Escape') e.preventDefault();
      const anchor = this.anchor;
      this.close();
      anchor?.focus();
    }
  }
}

export class SnoozedPanel {
  readonly root: HTMLElement;
  private inbox: Inbox | null = null;
  private readonly ui: { list: HTMLUListElement; empty: HTMLElement; loading: HTMLElement; error: HTMLElement; more: HTMLButtonElement; moreRow: HTMLElement };

  constructor() {
    const root = el('div', 'snoozed');
    root.dataset.testid = 'snoozed';
    root.part.add('snoozed');
    root.hidden = true;
    const list = el('ul', 'items');
    list.setAttribute('aria-label', 'Snoozed notifications, the soonest back first');
    const empty = el('div', 'empty');
    empty.dataset.testid = 'snoozed-empty';
    empty.append(el('p', 'empty-title', 'Nothing snoozed'), el('p', 'empty-text', 'Snooze a notification to have it come back later.'));
    const loading = el('div', 'note');
    loading.append(el('span', 'spinner'), document.createTextNode('Loading…'));
    const error = el('div', 'alert');
    error.setAttribute('role', 'alert');
    const more = el('button', 'link', 'Show more');
    more.type = 'button';
    const moreRow = el('div', 'note');
    moreRow.append(more);
    root.append(error, list, empty, loading, moreRow);
    this.root = root;
    this.ui = { list, empty, loading, error, more, moreRow };

    more.addEventListener('click', () => void this.inbox?.loadSnoozed(true));
    list.addEventListener('click', (e) => {
      const b = (e.target as Element).closest('button[data-id]') as HTMLButtonElement | null;
      if (b) this.unsnooze(b);
    });
  }

  attach(inbox: Inbox | null): void {
    this.inbox = inbox;
    this.render();
  }

  get visible(): boolean {
    return !this.root.hidden;
  }

  /** Shows the view, fetching the snoozed list. */
  show(): void {
    this.root.hidden = false;
    void this.inbox?.loadSnoozed();
    this.render();
  }

  hide(): void {
    this.root.hidden = true;
  }

  /** The first control, for focus when the view opens. */
  firstControl(): HTMLElement | null {
    return this.ui.list.querySelector('button');
  }

  /** Brings one back; focus goes to the next one's button, or the view. */
  private unsnooze(b: HTMLButtonElement): void {
    const inbox = this.inbox;
    if (!inbox) return;
    const buttons = Array.from(this.ui.list.querySelectorAll('button'));
    const i = buttons.indexOf(b);
    void inbox.unsnooze(b.dataset.id as string).catch(() => this.render());
    const next = Array.from(this.ui.list.querySelectorAll('button'));
    (next[Math.min(i, next.length - 1)] ?? this.ui.more).focus();
  }

  render(): void {
    const inbox = this.inbox;
    const { list, empty, loading, error, moreRow } = this.ui;
    const items = inbox ? inbox.listSnoozed() : [];
    const rows = items.map((n) => {
      const li = el('li', 'snoozed-item');
      li.dataset.testid = 'snoozed-notification';
      li.dataset.id = n.id;
      const text = el('div', 'main');
      const title = el('div', 'item-title', entrySummary(n));
      title.dataset.testid = 'title';
      const when = el('time', 'snoozed-when', n.snoozed_until ? 'Back ' + snoozeTime(n.snoozed_until) : '');
      when.dateTime = n.snoozed_until || '';
      text.append(title, when);
      const b = el('button', 'action primary', 'Unsnooze');
      b.type = 'button';
      b.dataset.id = n.id;
      b.dataset.testid = 'unsnooze';
      b.setAttribute('aria-label', `Unsnooze: ${entrySummary(n)}`);
      li.append(text, b);
      return li;
    });
    // Only the rows change: keep the focused button's place when nothing moved.
    const focused = (list.getRootNode() as ShadowRoot | Document).activeElement as HTMLElement | null;
    const focusedId = focused && list.contains(focused) ? focused.dataset.id : undefined;
    list.replaceChildren(...rows);
    if (focusedId) list.querySelector<HTMLElement>(`button[data-id="${CSS.escape(focusedId)}"]`)?.focus();
    const loaded = !!inbox?.snoozed;
    loading.hidden = !inbox?.loadingSnoozed;
    empty.hidden = !(loaded && items.length === 0 && !inbox?.snoozedCursor);
    moreRow.hidden = !inbox?.snoozedCursor || inbox.loadingSnoozed;
    error.textContent = inbox?.snoozedError ?? '';
    error.hidden = !inbox?.snoozedError;
  }
}
