import { describe, expect, it } from 'vitest';
import { formatBackupList } from '../../src/commands/replies.ts';
import { slackDate } from '../../src/notifications/slack-time.ts';
import { formatInZone } from '../../src/schedules/time.ts';
import { makeManifest } from '../health/fixtures.ts';

describe('times in messages: each reader’s own zone in Slack, the configured zone as the fallback', () => {
  it('writes Slack’s date token with the configured zone’s rendering as its fallback text', () => {
    expect(slackDate('2026-12-04T12:00:00Z', 'Europe/Paris')).toBe('<!date^1796385600^{date_short_pretty} {time}|Fri 2026-12-04 13:00 UTC+01:00>');
  });

  it('gives a format to the second a fallback to the second (the recoverable window in a terminal: QA)', () => {
    expect(slackDate('2026-12-04T12:00:07.900Z', 'Europe/Paris', '{date_short_pretty} {time_secs}')).toBe(
      '<!date^1796385607^{date_short_pretty} {time_secs}|Fri 2026-12-04 13:00:07 UTC+01:00>',
    );
  });

  it('/backup list uses the token in Slack and the configured zone in a terminal, never a bare UTC', () => {
    const m = makeManifest({ startedAt: new Date('2026-12-04T01:00:00Z') });
    const slack = formatBackupList([m], 'shop', { time: (at) => slackDate(at, 'Europe/Paris') });
    expect(slack).toContain('<!date^1796346000^{date_short_pretty} {time}|Fri 2026-12-04 02:00 UTC+01:00>');
    const cli = formatBackupList([m], 'shop', { time: (at) => formatInZone(at, 'Europe/Paris') });
    expect(cli).toContain('Fri 2026-12-04 02:00 UTC+01:00');
    expect(`${slack}\n${cli}`).not.toMatch(/\d{2}:\d{2} UTC(?!\+)/);
  });
});
