import { describe, expect, it } from 'vitest';
import { namedTablesLine } from '../../src/commands/named-tables.ts';
import { makeManifest } from '../fixtures/backups.ts';

/**
 * The overwrite confirmation names the tables each `--table=` resolves to, as the restore will read them (QA:
 * `--table=User` was confirmed as "table `User`" and then overwrote `public.user`, SQL's folding, which the
 * confirmation never showed).
 */
describe('the tables an overwrite confirmation names', () => {
  const base = makeManifest({ startedAt: '2026-12-07T02:00:00Z' });
  const m = {
    ...base,
    verification: {
      ...base.verification,
      tables: [
        { schema: 'public', table: 'User', rows: 3 },
        { schema: 'public', table: 'user', rows: 5 },
        { schema: 'Billing', table: 'Invoice', rows: 9 },
        { schema: 'public', table: 'Audit Log', rows: 1 },
      ],
    },
  };

  it('an unquoted name is the folded table, and the other of that name is said with how to name it', () => {
    expect(namedTablesLine(m, ['User'])).toBe(' `--table=User` is `public.user` (not `public."User"`: name it as `--table=public."User"`).');
    expect(namedTablesLine(m, ['"User"'])).toBe(' `--table="User"` is `public."User"` (not `public.user`: name it as `--table=public.user`).');
  });

  it('a name of one case only, found whatever its case, is named as SQL needs it', () => {
    expect(namedTablesLine(m, ['billing.invoice', 'public."Audit Log"'])).toBe(
      ' `--table=billing.invoice` is `"Billing"."Invoice"`; `--table=public."Audit Log"` is `public."Audit Log"`.',
    );
  });

  it('says nothing of a name the list does not resolve (a view, a typo): the restore says what it is', () => {
    expect(namedTablesLine(m, ['nope', 'a.b.c'])).toBe('');
  });
});
