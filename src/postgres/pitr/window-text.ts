/** The recoverable window (window.ts) in words: its range to the second, and base backups set aside. */

/**
 * A window's start as it is shown, to the second: the next whole second, as a time shown rounded down would be one
 * restore-pitr refuses (the window starts at 13:28:09.463, so "13:28:09" is before it: QA). Its end is rounded down.
 */
const fromSecond = (d: Date) => new Date(Math.ceil(d.getTime() / 1000) * 1000);

/**
 * "from X to Y" with `time` (to the second): the start rounded up. A stretch within one second (just after a base
 * backup) has no whole second in it, so it is said to the millisecond instead.
 */
export function shownRange(r: { from: Date; to: Date }, time: (d: Date) => string): string {
  const from = fromSecond(r.from);
  if (from.getTime() <= r.to.getTime()) return `from ${time(from)} to ${time(r.to)}`;
  return `from ${r.from.toISOString()} to ${r.to.toISOString()} (less than a second)`;
}

/** A window across a promotion (wal-types.ts `followed`), said after its range; '' for one that crosses none. */
export const followedText = (f: { from: number; to: number } | undefined) =>
  f ? ` (across the promotion to timeline ${f.to}: recovery follows its history file from a base backup taken on timeline ${f.from})` : '';

/**
 * An older timeline's window, said after the window's range: "before the promotion", and after a crash failover what
 * it holds that the new timeline does not, and how to get it (QA: the failover's loss was said nowhere).
 */
export function priorText(target: string, p: { timeline: number; forkedAt?: string | undefined }, range: string): string {
  const lost = p.forkedAt
    ? `; past ${p.forkedAt}, where the promoted server forked from it, the old primary wrote commits the new timeline never received: \`pg-backup-bot restore-pitr ${target} --time=latest --timeline=${p.timeline} --data-dir=DIR\` recovers them`
    : '';
  return `${range} on timeline ${p.timeline}, before the promotion${lost}`;
}

/** Set-aside base backups (wal-index.ts setAsideBases, oldest first) in a sentence: "X was", "X and 2 older were". */
export const setAsideNamed = (ids: readonly string[]) => (ids.length > 1 ? `${ids.at(-1)} and ${ids.length - 1} older were` : `${ids.at(-1)} was`);
