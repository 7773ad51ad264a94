import { describe, expect, it } from 'vitest';
import { backupNeed } from '../../src/commands/guard.ts';
import { parseBackupText } from '../../src/commands/backup-text.ts';

describe('/backup now --physical', () => {
  it('parses with or without a target, the flag before or after it', () => {
    expect(parseBackupText('now --physical')).toEqual({ verb: 'now', physical: true });
    expect(parseBackupText('now --physical app')).toEqual({ verb: 'now', target: 'app', physical: true });
    expect(parseBackupText('NOW app --PHYSICAL')).toEqual({ verb: 'now', target: 'app', physical: true });
    expect(parseBackupText('now app')).toEqual({ verb: 'now', target: 'app' });
  });

  it('refuses what is not a target, and more than one', () => {
    expect(parseBackupText('now --physical a;rm')).toMatchObject({ verb: 'help', problem: '"a;rm" is not a valid target name.' });
    expect(parseBackupText('now --physical app shop')).toMatchObject({ verb: 'help', problem: expect.stringMatching(/at most one target/) });
    expect(parseBackupText('now --physical --physical')).toMatchObject({ verb: 'help' });
  });

  it('needs the operator role, as /backup now does', () => {
    expect(backupNeed(parseBackupText('now --physical app'))).toMatchObject({ role: 'operator', valid: true });
  });
});
