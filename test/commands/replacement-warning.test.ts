import { describe, expect, it } from 'vitest';
import { warningSections } from '../../src/commands/replacement-warning.ts';
import { slackDate } from '../../src/notifications/slack-time.ts';

describe('warningSections', () => {
  it('splits a confirmation over Slack’s 3000 characters a section after a sentence, never inside a date token', () => {
    const at = slackDate(new Date('2026-12-07T02:00:00Z'), 'Europe/Paris');
    const text = `${'word '.repeat(590)}${at} and ${'more words here. '.repeat(40)}the end`;
    const sections = warningSections(text);
    expect(sections.length).toBeGreaterThan(1);
    for (const s of sections) {
      expect(s.text.text.length).toBeLessThanOrEqual(3000);
      // Every token whole in one section.
      expect((s.text.text.match(/</g) ?? []).length).toBe((s.text.text.match(/>/g) ?? []).length);
    }
    expect(
      sections
        .map((s) => s.text.text)
        .join(' ')
        .replace(/\s+/g, ' '),
    ).toBe(text.replace(/\s+/g, ' ').trim());
    expect(warningSections('short')).toEqual([{ type: 'section', text: { type: 'mrkdwn', text: 'short' } }]);
  });
});
