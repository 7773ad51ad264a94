import { replacedName } from '../../src/postgres/restore/swap.ts';
import { requiredRole } from '../../src/commands/guard.ts';
import type { Role } from '../../src/commands/roles.ts';
import { describe, expect, it } from 'vitest';
import { BACKUP_USAGE, parseBackupText } from '../../src/commands/backup-text.ts';
import { parseRestoreTestText, parseRestoreText } from '../../src/commands/restore-text.ts';

describe('parseBackupText', () => {
  it.each([
    ['now', { verb: 'now' }],
    ['  NOW   shop ', { verb: 'now', target: 'shop' }],
    ['list', { verb: 'list' }],
    ['list shop', { verb: 'list', target: 'shop' }],
    ['status', { verb: 'status' }],
    ['checklist daily', { verb: 'checklist', kind: 'daily' }],
    ['Checklist MONTHLY', { verb: 'checklist', kind: 'monthly' }],
    ['help', { verb: 'help' }],
    ['', { verb: 'help' }],
  ])('reads %j', (text, expected) => {
    expect(parseBackupText(text)).toEqual(expected);
  });

  it.each([
    'frobnicate; rm -rf /',
    'checklist',
    'checklist hourly',
    'checklist daily now',
    'now $(reboot)',
    'now shop extra',
    'status please',
    'now 9bad',
    'list ../../etc',
    'now `id',
    'now `$(id)`',
  ])('turns %j into help with the problem named', (text) => {
    const req = parseBackupText(text);
    expect(req.verb).toBe('help');
    expect(req).toHaveProperty('problem');
  });

  it('takes a word in Slack code backticks as the word: it is then checked like any other', () => {
    expect(parseBackupText('now `shop`')).toEqual({ verb: 'now', target: 'shop' });
  });
});

describe('parseBackupText: pre-migration', () => {
  it.each([
    ['pre-migration JIRA-1234', { verb: 'pre-migration', label: 'JIRA-1234' }],
    ['Pre-Migration add_orders.idx SHOP', { verb: 'pre-migration', label: 'add_orders.idx', target: 'shop' }],
    [`pre-migration ${'a'.repeat(80)}`, { verb: 'pre-migration', label: 'a'.repeat(80) }],
  ])('reads %j, keeping the label as typed', (text, expected) => {
    expect(parseBackupText(text)).toEqual(expected);
  });

  it.each([
    ['pre-migration', /needs a label/],
    [`pre-migration ${'a'.repeat(81)}`, /not a valid label/],
    ['pre-migration drop;table', /not a valid label/],
    ['pre-migration "JIRA', /^“"JIRA” is not a valid label/],
    ['pre-migration -rf', /not a valid label/],
    ['pre-migration <@U123>', /not a valid label/],
    ['pre-migration "two words" shop', /Too many words|not a valid label/],
    ['pre-migration JIRA-1 ../etc', /not a valid target name/],
    // A label typed with a space: the join is offered (QA).
    ['pre-migration JIRA 4.2', /^"4\.2" is not a valid target name\. If it is part of the label, join them: `\/backup pre-migration JIRA-4\.2`\.$/],
  ])('turns %j into help naming the problem', (text, problem) => {
    const req = parseBackupText(text);
    expect(req.verb).toBe('help');
    expect(req).toMatchObject({ problem: expect.stringMatching(problem) });
  });
});

describe('/backup help', () => {
  it('names every /backup command it parses, and points at the other commands and the scrub', () => {
    for (const verb of ['now', 'now --physical', 'pre-migration', 'list', 'status', 'health', 'diff', 'checklist', 'audit', 'help']) {
      expect(BACKUP_USAGE).toContain(`\`/backup ${verb}`);
    }
    expect(BACKUP_USAGE).toContain('`/restore-test pitr [target]`');
    expect(BACKUP_USAGE).toContain('`pg-backup-bot scrub --all`');
    // "alone list their commands" holds: both answer an empty text with their usage.
    expect(parseRestoreTestText('')).toEqual({ verb: 'help' });
    expect(parseRestoreText('')).toEqual({ verb: 'help' });
  });

  it('says who may do what as the guard decides it', () => {
    const id = 'shop-20261205T020000Z';
    const said: Record<Role, Array<[string, string]>> = {
      viewer: [
        ['/backup', 'list'],
        ['/backup', 'status'],
        ['/backup', 'health'],
        ['/backup', `diff ${id} ${id}`],
        ['/restore-test', 'history shop'],
        ['/restore', 'list'],
      ],
      operator: [
        ['/backup', 'now'],
        ['/backup', 'pre-migration JIRA-1'],
        ['/backup', 'checklist daily'],
        ['/restore-test', 'latest'],
        ['/restore-test', 'pitr shop'],
        ['/restore', id],
        ['/restore', 'drop shop_20261205t020000'],
      ],
      admin: [
        ['/restore', `${id} --into=shop`],
        ['/restore', `${id} --table=shop.orders --into=shop`],
        ['/restore', `${id} --to=restore-server --with-globals`],
        ['/restore', `drop ${replacedName('shop', new Date('2026-12-05T02:00:00Z'))}`],
        ['/backup', 'audit'],
      ],
    };
    for (const [role, asks] of Object.entries(said))
      for (const [command, text] of asks) expect([command, text, requiredRole(command, text).role]).toEqual([command, text, role]);
    expect(BACKUP_USAGE).toContain(
      'viewers list, see status, health, diffs, restore-test history and restored databases; operators also back up, run checklists and tick their boxes, acknowledge a data drift, run restore tests, restore into a new database and drop one a restore made; admins also replace or overwrite a database, restore with `--with-globals`, drop a kept `…_replaced_…` database and read the audit trail.',
    );
  });
});
