/**
 * How an inbox entry that stands for several notifications is worded:
 * "Maya and 2 others commented on Launch plan".
 *
 * An entry carries `group_count` (how many notifications it stands for),
 * `actors` (the distinct `actor`s of its notifications, newest first; the
 * server keeps the last 5) and the newest notification's `title`. The rule:
 *
 * - It names the newest actor, `actors[0]`: the one the title is about.
 * - "Others" are other people, not other notifications. While `actors` holds
 *   fewer than 5 it is complete, so there are `actors.length - 1` others
 *   exactly: Maya commenting three times is still "Maya". Once it holds 5,
 *   older actors may have been dropped, so each notification beyond the
 *   listed actors counts as one more person: `max(actors.length, group_count) - 1`,
 *   exact when everyone sent one ("Maya and 49 others" for fifty comments by
 *   fifty people), and at most that many otherwise.
 * - No others: "Maya"; one: "Maya and Sam"; more: "Maya and N others".
 * - A title that begins with the newest actor's name ("Maya commented on …")
 *   has the name replaced by that phrase; any other title is kept as sent,
 *   and the phrase goes beside it. No actors: the title alone.
 */
import type { Notification } from './client.js';

/** How many distinct actors the server keeps per entry (`actors`, newest first). */
export const ACTORS_KEPT = 5;

/** "Maya", "Maya and Sam", "Maya and 2 others", or null when no actor is known. */
export function actorPhrase(actors: readonly string[], groupCount: number): string | null {
  const newest = actors[0];
  if (!newest) return null;
  const people = actors.length < ACTORS_KEPT ? actors.length : Math.max(actors.length, groupCount);
  if (people === 1) return newest;
  if (people === 2) return `${newest} and ${actors[1]}`;
  return `${newest} and ${people - 1} others`;
}

export interface EntryText {
  /** The actors, when they begin the title ("Maya and 2 others"); `rest` follows them. */
  lead: string | null;
  /** The title, without the name it began with when `lead` took its place. */
  rest: string;
  /** The actors, when the title does not begin with the newest one's name: shown beside it. */
  by: string | null;
}

export function entryText(n: Pick<Notification, 'title' | 'actors' | 'group_count'>): EntryText {
  const title = String(n.title || '');
  const actors = n.actors ?? [];
  const phrase = actorPhrase(actors, n.group_count ?? 1);
  const newest = actors[0] ?? '';
  if (!phrase) return { lead: null, rest: title, by: null };
  const after = title.slice(newest.length);
  if (title.startsWith(newest) && !/^[\p{L}\p{N}]/u.test(after)) return { lead: phrase, rest: after, by: null };
  return { lead: null, rest: title, by: phrase };
}

/** The entry in one line: "Maya and 2 others commented on Launch plan". */
export function entrySummary(n: Pick<Notification, 'title' | 'actors' | 'group_count'>): string {
  const t = entryText(n);
  return (t.lead ?? '') + t.rest + (t.by ? ` (${t.by})` : '');
}
