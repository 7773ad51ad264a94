import { BotError } from '../../errors.ts';

/** "2026-12-03 14:30:00+01": a time with its offset; anything without one is refused (whose 14:30?). */
export function parseRecoveryTime(asked: string): Date {
  // The bot's own way of writing a time is taken back as it is shown: "2026-12-07 07:28:46 UTC" (the window), and
  // "UTC+01:00" (QA: pasted from /backup list and refused as "has no UTC offset").
  const text = asked
    .trim()
    // "2026-12-03t14:30z" is ISO too (QA of /restore-test pitr: it upper-cased, restore-pitr did not).
    .replace(/^(\d{4}-\d{2}-\d{2})t/i, '$1T')
    .replace(/(\d)z$/, '$1Z')
    // "Mon 2026-12-07 18:55:30 UTC+01:00", as `/backup list` and the CLI write a time (QA: refused, though shown).
    .replace(/^(mon|tue|wed|thu|fri|sat|sun)[a-z]*,?\s+/i, '')
    .replace(/\s*UTC$/i, 'Z')
    .replace(/\s*UTC([+-])(\d{1,2})(:?\d{2})?$/i, (_m, sign: string, h: string, m?: string) => `${sign}${h.padStart(2, '0')}${m ?? ''}`)
    // "14:30:00 +01:00", as `date --rfc-3339` and many logs write it: the space is not part of the time.
    .replace(/(\d)\s+([+-]\d{1,2}(:?\d{2})?|Z)$/i, '$1$2')
    // "+1", as some people write an offset: "+01".
    .replace(/(:\d{2}(?:\.\d+)?)([+-])(\d)$/, (_m, time: string, sign: string, h: string) => `${time}${sign}0${h}`);
  // Something that is not a date and time at all is said so, not blamed on a missing offset.
  if (!/^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}/.test(text.trim()))
    throw new BotError('bad_request', `"${asked}" is not a time: say "2026-12-03 14:30:00+01" (date, time and UTC offset).`);
  if (!/(Z|[+-]\d{2}(:?\d{2})?)$/.test(text.trim())) {
    throw new BotError('bad_request', `"${asked}" has no UTC offset: say "2026-12-03 14:30:00+01", "… UTC" or "…Z", so the moment is not a guess.`);
  }
  const d = new Date(
    text
      .trim()
      .replace(' ', 'T')
      .replace(/([+-]\d{2})$/, '$1:00'),
  );
  if (Number.isNaN(d.getTime())) throw new BotError('bad_request', `"${asked}" is not a time PostgreSQL and the bot read alike (e.g. 2026-12-03 14:30:00+01).`);
  // A day the calendar lacks (2026-02-30) would be moved to another (March 2nd) and recovered to: refused (QA).
  const [y, m, day] = (/^(\d{4})-(\d{2})-(\d{2})/.exec(text.trim()) ?? []).slice(1).map(Number) as [number, number, number];
  const calendar = new Date(Date.UTC(y, m - 1, day));
  if (calendar.getUTCFullYear() !== y || calendar.getUTCMonth() !== m - 1 || calendar.getUTCDate() !== day)
    throw new BotError('bad_request', `"${asked}" names a day the calendar does not have; check the date.`);
  // The bot keeps milliseconds: a finer time would be cut, and a commit in the part cut off left out (QA).
  const fraction = /\.(\d+)/.exec(text)?.[1] ?? '';
  if (fraction.length > 3 && /[1-9]/.test(fraction.slice(3)))
    throw new BotError(
      'bad_request',
      `"${asked}" is finer than a millisecond, which the bot keeps: round it up to the next millisecond to include a commit made within it.`,
    );
  return d;
}
