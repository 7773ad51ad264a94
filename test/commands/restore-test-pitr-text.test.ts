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
    expect(parseRestoreTestText('pitr shop 2026-12-03 14:30:00+01')).toEqual({ verb: 'pitr', target: 'shop', at: '2026-12-03 14:30:00+01' });
    expect(parseRestoreTestText('pitr 2026-12-03T14:30:00.250Z')).toEqual({ verb: 'pitr', at: '2026-12-03T14:30:00.250Z' });
    // Slack's quotes around the time, and a space before the offset.
    expect(parseRestoreTestText('pitr shop “2026-12-03 14:30:00 +01”')).toEqual({ verb: 'pitr', target: 'shop', at: '2026-12-03 14:30:00+01' });
  });

  it('keeps a time without an offset for the handler to refuse with its reason, and what is no time at all for help', () => {
    expect(parseRestoreTestText('pitr shop 2026-12-03 14:30')).toEqual({ verb: 'pitr', target: 'shop', at: '2026-12-03 14:30' });
    expect(parseRestoreTestText('pitr shop yesterday')).toMatchObject({
      verb: 'help',
      problem: expect.stringMatching(/"yesterday" is not a time: say `latest` or a time with its offset/),
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
