import { describe, expect, it } from 'vitest';
import { restoreTestNeed } from '../../src/commands/guard.ts';
import { parseRestoreTestText, RESTORE_TEST_USAGE } from '../../src/commands/restore-text.ts';
import { PitrMoment } from '../../src/jobs/queues.ts';

describe('/restore-test pitr [target] [time|latest]', () => {
  it('reads the target and the moment; latest when none is given', () => {
    expect(parseRestoreTestText('pitr')).toEqual({ verb: 'pitr', at: 'latest' });
    expect(parseRestoreTestText('pitr shop')).toEqual({ verb: 'pitr', target: 'shop', at: 'latest' });
    expect(parseRestoreTestText('PITR shop Latest')).toEqual({ verb: 'pitr', target: 'shop', at: 'latest' });
    expect(parseRestoreTestText('pitr random')).toEqual({ verb: 'pitr', at: 'random' });
    // The moment named, passed on in UTC to the millisecond.
    expect(parseRestoreTestText('pitr shop 2026-12-03 14:30:00+01')).toEqual({ verb: 'pitr', target: 'shop', at: '2026-12-03T13:30:00.000Z' });
    expect(parseRestoreTestText('pitr 2026-12-03T14:30:00.250Z')).toEqual({ verb: 'pitr', at: '2026-12-03T14:30:00.250Z' });
    // Slack's quotes around the time, and a space before the offset.
    expect(parseRestoreTestText('pitr shop “2026-12-03 14:30:00 +01”')).toEqual({ verb: 'pitr', target: 'shop', at: '2026-12-03T13:30:00.000Z' });
  });

  it('takes back every way the bot writes a time, as the CLI does (QA: refused in Slack, taken by restore-pitr)', () => {
    const at = { verb: 'pitr', target: 'app', at: '2026-12-07T17:55:30.000Z' };
    expect(parseRestoreTestText('pitr app 2026-12-07 17:55:30 UTC')).toEqual(at);
    expect(parseRestoreTestText('pitr app 2026-12-07 18:55:30 UTC+01:00')).toEqual(at);
    expect(parseRestoreTestText('pitr app Mon 2026-12-07 18:55:30 UTC+01:00')).toEqual(at);
    expect(parseRestoreTestText('pitr app 2026-12-07 18:55:30+1')).toEqual(at);
    expect(parseRestoreTestText('pitr app 2026-12-07T17:55:30.000Z')).toEqual(at);
  });

  it('refuses a time without an offset, and what is no time at all, with the reason', () => {
    expect(parseRestoreTestText('pitr shop 2026-12-03 14:30')).toMatchObject({
      verb: 'help',
      problem: expect.stringMatching(
        /^"2026-12-03 14:30" has no UTC offset: say "2026-12-03 14:30:00\+01", "… UTC" or "…Z", so the moment is not a guess; or say `latest`\.$/,
      ),
    });
    expect(parseRestoreTestText('pitr shop yesterday')).toMatchObject({
      verb: 'help',
      problem: expect.stringMatching(/"yesterday" is not a time: say "2026-12-03 14:30:00\+01" \(date, time and UTC offset\); or say `latest`/),
    });
    expect(parseRestoreTestText('pitr shop; rm -rf /')).toMatchObject({ verb: 'help', problem: expect.stringMatching(/is not a valid target name/) });
  });

  it('needs an operator, is in the help, and only offset times reach a job', () => {
    expect(restoreTestNeed(parseRestoreTestText('pitr shop latest'))).toMatchObject({ role: 'operator', valid: true });
    expect(RESTORE_TEST_USAGE).toContain('/restore-test pitr [target] [latest|random|<time>]');
    expect(PitrMoment.safeParse('2026-12-03 14:30:00+01').success).toBe(true);
    expect(PitrMoment.safeParse('latest').success).toBe(true);
    expect(PitrMoment.safeParse('2026-12-03 14:30').success).toBe(false);
    expect(PitrMoment.safeParse("latest'; DROP").success).toBe(false);
  });

  it('a backup id with a word after it is "too many words", not "not a backup id"', () => {
    expect(parseRestoreTestText('shop-20261205T183428Z now')).toEqual({
      verb: 'help',
      problem: 'Too many words: `/restore-test shop-20261205T183428Z` takes the backup id alone.',
    });
    expect(parseRestoreTestText('shop-20261205T183428Z')).toEqual({ verb: 'run', which: { latest: false, backupId: 'shop-20261205T183428Z' } });
  });
});
