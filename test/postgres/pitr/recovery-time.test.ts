import { describe, expect, it } from 'vitest';
import { parseRecoveryTime } from '../../../src/postgres/pitr/pitr-restore.ts';

describe('parseRecoveryTime: the moment asked, or a clear refusal', () => {
  it('reads a time with its offset, to the millisecond', () => {
    expect(parseRecoveryTime('2026-12-03 14:30:00+01').toISOString()).toBe('2026-12-03T13:30:00.000Z');
    // As the bot writes times (the window in /backup list, a backup's time with its zone): taken back as shown (QA).
    expect(parseRecoveryTime('2026-12-07 07:28:46 UTC').toISOString()).toBe('2026-12-07T07:28:46.000Z');
    expect(parseRecoveryTime(' 2026-12-07 08:28:46 UTC+01:00 ').toISOString()).toBe('2026-12-07T07:28:46.000Z');
    expect(parseRecoveryTime('2026-12-07T07:28:46utc').toISOString()).toBe('2026-12-07T07:28:46.000Z');
    expect(parseRecoveryTime('2026-12-07 08:28:46 UTC+1').toISOString()).toBe('2026-12-07T07:28:46.000Z');
    expect(parseRecoveryTime('2026-12-06T10:03:13.967Z').toISOString()).toBe('2026-12-06T10:03:13.967Z');
    expect(parseRecoveryTime('2026-12-06 10:03:13.967000+00').toISOString()).toBe('2026-12-06T10:03:13.967Z');
    expect(parseRecoveryTime('2028-02-29 00:00:00Z').toISOString()).toBe('2028-02-29T00:00:00.000Z');
    // Offsets as `date --rfc-3339`, logs and ISO 8601's basic form write them: with a space before, or no colon.
    expect(parseRecoveryTime('2026-12-03 14:30:00 +01:00').toISOString()).toBe('2026-12-03T13:30:00.000Z');
    expect(parseRecoveryTime('2026-12-03 14:30:00+0100').toISOString()).toBe('2026-12-03T13:30:00.000Z');
    expect(parseRecoveryTime('2026-12-03 14:30:00.25 -0530').toISOString()).toBe('2026-12-03T20:00:00.250Z');
    // As the CLI's list writes a time (a weekday first), an offset of one digit, and ISO in lower case (QA, second reader).
    expect(parseRecoveryTime('Mon 2026-12-07 08:28:46 UTC+01:00').toISOString()).toBe('2026-12-07T07:28:46.000Z');
    expect(parseRecoveryTime('2026-12-07 08:28:46+1').toISOString()).toBe('2026-12-07T07:28:46.000Z');
    expect(parseRecoveryTime('2026-12-07t07:28:46z').toISOString()).toBe('2026-12-07T07:28:46.000Z');
  });

  it('refuses a time with no offset, and says what to write', () => {
    expect(() => parseRecoveryTime('2026-12-03 14:30:00')).toThrow('has no UTC offset');
    expect(() => parseRecoveryTime('yesterday at 3')).toThrow('is not a time');
  });

  it('refuses a day the calendar lacks, never moving it to another (QA: 2026-02-30 became March 2nd)', () => {
    expect(() => parseRecoveryTime('2026-02-30 10:00:00+00')).toThrow('names a day the calendar does not have');
    expect(() => parseRecoveryTime('2026-11-31 10:00:00+00')).toThrow('names a day the calendar does not have');
    expect(() => parseRecoveryTime('2026-02-29 10:00:00+00')).toThrow('names a day the calendar does not have');
  });

  it('refuses a time finer than a millisecond rather than cut it (QA: a commit in the cut part was left out)', () => {
    expect(() => parseRecoveryTime('2026-12-06 10:03:13.967255+00')).toThrow('is finer than a millisecond, which the bot keeps: round it up');
  });
});
