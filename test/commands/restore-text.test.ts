import { describe, expect, it } from 'vitest';
import { parseRestoreText } from '../../src/commands/restore-text.ts';

const ID = 'app-20261204T020000Z';

describe('parseRestoreText', () => {
  it('takes the whole database, a replacement, list and drop', () => {
    expect(parseRestoreText(ID)).toEqual({ verb: 'restore', backupId: ID, tables: [], schemas: [], into: null });
    expect(parseRestoreText(`${ID} --into=shop`)).toEqual({ verb: 'restore', backupId: ID, tables: [], schemas: [], into: 'shop' });
    expect(parseRestoreText('list')).toEqual({ verb: 'list' });
    expect(parseRestoreText('list shop')).toEqual({ verb: 'list', target: 'shop' });
    expect(parseRestoreText('drop pgbb_restore_20261204t020000_ab12')).toEqual({ verb: 'drop', database: 'pgbb_restore_20261204t020000_ab12' });
    expect(parseRestoreText('drop')).toMatchObject({ verb: 'help', problem: expect.stringMatching(/Name the database to drop/) });
  });

  it('names quoted tables as applications have them: PascalCase, spaces, Slack’s curly quotes, a shell’s single quotes', () => {
    const tables = (text: string) => {
      const r = parseRestoreText(`${ID} ${text}`);
      return r.verb === 'restore' ? r.tables : r;
    };
    expect(tables('--table="Audit Log"')).toEqual(['"Audit Log"']);
    expect(tables('--table=public."Audit Log"')).toEqual(['public."Audit Log"']);
    expect(tables(`--table='"Audit Log"'`)).toEqual(['"Audit Log"']);
    expect(tables('--table=\u201CAudit Log\u201D')).toEqual(['"Audit Log"']);
    expect(tables('--table=public."User" --table=billing."Invoice"')).toEqual(['public."User"', 'billing."Invoice"']);
    expect(tables('--table="say ""hi"""')).toEqual(['"say ""hi"""']);
  });

  it('refuses what is not a name, with the reason, before anything starts', () => {
    expect(parseRestoreText(`${ID} --table="Audit Log`)).toMatchObject({
      verb: 'help',
      problem: expect.stringMatching(/is not something \/restore understands/),
    });
    expect(parseRestoreText(`${ID} --table=a;drop`)).toMatchObject({ verb: 'help', problem: expect.stringMatching(/is not a table name/) });
    expect(parseRestoreText(`${ID} --table=a.b.c`)).toMatchObject({ verb: 'help', problem: expect.stringMatching(/is not a table name/) });
    expect(parseRestoreText(`${ID} --schema="x" --into=a;b`)).toMatchObject({ verb: 'help' });
    expect(parseRestoreText(`${ID} "Audit Log"`)).toMatchObject({ verb: 'help' });
  });
});
