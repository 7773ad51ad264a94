import { describe, expect, it } from 'vitest';
import { applyTick, checklistItems, checklistMessage, DEFAULT_CHECKLISTS } from '../../src/notifications/checklists.ts';
import { ConsoleNotifier, plainText } from '../../src/notifications/console-notifier.ts';

describe('the demo’s console notifier', () => {
  it('shows a checklist’s boxes, ticked and open, so the items left to people are visible too', async () => {
    const lines: string[] = [];
    const items = applyTick(
      checklistItems(DEFAULT_CHECKLISTS.daily, {
        'backup-ran': { ok: true, evidence: '02:00 backup shop-1: 157 MB' },
        'size-normal': { ok: false, evidence: 'not enough history' },
      }),
      ['backup-ran', 'disk-space'],
      'U0ANA',
      '2026-11-25T09:14:00Z',
    ).items;
    await new ConsoleNotifier((l) => lines.push(l)).post(checklistMessage('daily', items, 2, 'Wed 2026-11-25'));
    const shown = lines.join('\n');
    expect(shown).toContain("│ [x] Last night's backups ran\n");
    expect(shown).toContain('│ [ ] Backup sizes look normal\n');
    expect(shown).toContain('│ [x] Backup disk has room\n');
    expect(shown).toContain('│ [ ] Overnight alerts in this channel reviewed\n');
    expect(shown).toContain('🤖 02:00 backup shop-1: 157 MB');
    expect(shown).toContain('ticked by @U0ANA at 2026-11-25 09:14 UTC+00:00');
  });

  it('leaves code as it is: the asterisks of a cron pattern are not bold marks', () => {
    expect(plainText('• *shop* hourly: cron `15 * * * *` — next *Wed*')).toBe('• shop hourly: cron 15 * * * * — next Wed');
    expect(plainText('Rows:\n```a  1\nb  2```')).toBe('Rows:\na  1\nb  2');
    expect(plainText(':no_entry: *No tested restore point* <@U0ANA>')).toBe('⛔ No tested restore point @U0ANA');
  });

  it('renders what Slack renders: italics, date tokens by their fallback, links, escapes; not the underscores of names', () => {
    expect(plainText('✅ last backup: ok _(since 2026-12-04 18:34 UTC)_')).toBe('✅ last backup: ok (since 2026-12-04 18:34 UTC)');
    expect(plainText('Kept until <!date^1799001265^{date_short_pretty} {time}|Sun 2027-01-03 18:34 UTC+00:00>')).toBe(
      'Kept until Sun 2027-01-03 18:34 UTC+00:00',
    );
    expect(plainText('see <https://example.com/runbook|the runbook>')).toBe('see the runbook (https://example.com/runbook)');
    expect(plainText('dropped pgbb_rt_0a1b and app_owner_1 &lt;ok&gt; &amp; done :arrow_right: :point_right:')).toBe(
      'dropped pgbb_rt_0a1b and app_owner_1 <ok> & done ➡️ 👉',
    );
  });
});
