import { describe, expect, it } from 'vitest';
import { parseBackupText } from '../../src/commands/backup-text.ts';

describe('parseBackupText', () => {
  it.each([
    ['now', { verb: 'now' }],
    ['  NOW   shop ', { verb: 'now', target: 'shop' }],
    ['list', { verb: 'list' }],
    ['list shop', { verb: 'list', target: 'shop' }],
    ['status', { verb: 'status' }],
    ['help', { verb: 'help' }],
    ['', { verb: 'help' }],
  ])('reads %j', (text, expected) => {
    expect(parseBackupText(text)).toEqual(expected);
  });

  it.each(['frobnicate; rm -rf /', 'now $(reboot)', 'now shop extra', 'status please', 'now 9bad', 'list ../../etc', 'now `id`'])(
    'turns %j into help with the problem named',
    (text) => {
      const req = parseBackupText(text);
      expect(req.verb).toBe('help');
      expect(req).toHaveProperty('problem');
    },
  );
});
