import { describe, expect, it } from 'vitest';
import { parseTableRef, planSelection } from '../../../src/postgres/restore/selection-plan.ts';
import { parseToc } from '../../../src/postgres/restore/toc.ts';

// Trimmed from real pg_restore 15 output for test/fixtures/realistic-schema.sql (same ids, OIDs and dependencies).
const LIST = `;
; Archive created at 2026-11-25 00:18:47 UTC
;
7; 2615 17470 SCHEMA - shop postgres
2; 3079 16820 EXTENSION - btree_gist 
3765; 0 0 COMMENT - EXTENSION btree_gist 
1066; 1247 17472 DOMAIN shop email postgres
433; 1255 17600 FUNCTION shop touch_updated_at() postgres
233; 1259 17631 TABLE public Mixed Case postgres
232; 1259 17619 TABLE public sessions postgres
218; 1259 17501 TABLE shop customers postgres
217; 1259 17500 SEQUENCE shop customers_id_seq postgres
3758; 0 17631 TABLE DATA public Mixed Case postgres
3757; 0 17619 TABLE DATA public sessions postgres
3745; 0 17501 TABLE DATA shop customers postgres
3767; 0 0 SEQUENCE SET shop customers_id_seq postgres
3588; 2606 17637 CONSTRAINT public Mixed Case Mixed Case_pkey postgres
3586; 2606 17619 CONSTRAINT public sessions sessions_pkey postgres
3565; 2606 17509 CONSTRAINT shop customers customers_pkey postgres
3598; 2620 17601 TRIGGER shop customers customers_touch postgres
3597; 2606 17641 FK CONSTRAINT public sessions sessions_customer_id_fkey postgres
`;

const header = (id: number, oid: number, deps: number[], name: string, type: string, schema: string, owner = 'postgres') =>
  `--\n-- TOC entry ${id} (class 1259 OID ${oid})\n${deps.length ? `-- Dependencies: ${deps.join(' ')}\n` : ''}-- Name: ${name}; Type: ${type}; Schema: ${schema}; Owner: ${owner}\n--\n\nSQL;\n`;

const VERBOSE = [
  header(7, 17470, [], 'shop', 'SCHEMA', '-'),
  header(2, 16820, [], 'btree_gist', 'EXTENSION', '-', '-'),
  header(3765, 0, [2], 'EXTENSION btree_gist', 'COMMENT', '-', ''),
  header(1066, 17472, [7], 'email', 'DOMAIN', 'shop'),
  header(433, 17600, [7], 'touch_updated_at()', 'FUNCTION', 'shop'),
  header(233, 17631, [], 'Mixed Case', 'TABLE', 'public'),
  header(232, 17619, [], 'sessions', 'TABLE', 'public'),
  header(218, 17501, [7, 1066], 'customers', 'TABLE', 'shop'),
  header(217, 17500, [218, 7], 'customers_id_seq', 'SEQUENCE', 'shop'),
  header(3588, 17637, [233], 'Mixed Case Mixed Case_pkey', 'CONSTRAINT', 'public'),
  header(3586, 17619, [232], 'sessions sessions_pkey', 'CONSTRAINT', 'public'),
  header(3565, 17509, [218], 'customers customers_pkey', 'CONSTRAINT', 'shop'),
  header(3598, 17601, [218, 433], 'customers customers_touch', 'TRIGGER', 'shop'),
  header(3597, 17641, [3565, 232, 218], 'sessions sessions_customer_id_fkey', 'FK CONSTRAINT', 'public'),
].join('');

const toc = parseToc(LIST, VERBOSE);
const ids = (plan: { ids: number[] }) => plan.ids;

describe('parseToc', () => {
  it('reads every entry in restore order and ties data entries to their table or sequence', () => {
    expect(toc.map((e) => e.id)).toEqual(
      LIST.split('\n')
        .filter((l) => /^\d/.test(l))
        .map((l) => Number(l.split(';')[0])),
    );
    expect(toc.find((e) => e.id === 3758)).toMatchObject({ desc: 'TABLE DATA', schema: 'public', tag: 'Mixed Case', deps: [233] });
    expect(toc.find((e) => e.id === 3767)).toMatchObject({ desc: 'SEQUENCE SET', schema: 'shop', tag: 'customers_id_seq', deps: [217] });
    expect(toc.find((e) => e.id === 3597)).toMatchObject({ desc: 'FK CONSTRAINT', tag: 'sessions sessions_customer_id_fkey', deps: [3565, 232, 218] });
  });
});

describe('planSelection', () => {
  it('into a new database: the table, what belongs to it, what it needs, and every extension', () => {
    const plan = planSelection(toc, { tables: ['shop.customers'], schemas: [], mode: 'new' });
    expect(ids(plan)).toEqual([7, 2, 3765, 1066, 433, 218, 217, 3745, 3767, 3565, 3598]);
    expect(plan.dataTables).toEqual([{ schema: 'shop', table: 'customers' }]);
    expect(plan.notes).toEqual([]);
    expect(plan.listFile.split('\n')[5]).toBe('218; 1259 17501 TABLE shop customers postgres');
  });

  it('into a new database: leaves out a foreign key to a table not restored, and says so', () => {
    const plan = planSelection(toc, { tables: ['sessions'], schemas: [], mode: 'new' });
    expect(ids(plan)).toEqual([2, 3765, 232, 3757, 3586]);
    expect(plan.notes).toEqual(['foreign key sessions_customer_id_fkey of public.sessions was not restored: it refers to a table that was not restored']);
  });

  it('into an existing database: only the table’s own entries, plus the foreign keys that point at it', () => {
    const plan = planSelection(toc, { tables: ['customers'], schemas: [], mode: 'existing' });
    expect(ids(plan)).toEqual([218, 217, 3745, 3767, 3565, 3598, 3597]);
  });

  it('takes whole schemas, and quoted or case-folded names', () => {
    expect(planSelection(toc, { tables: [], schemas: ['public'], mode: 'existing' }).dataTables.map((t) => t.table)).toEqual(['Mixed Case', 'sessions']);
    expect(ids(planSelection(toc, { tables: ['public."Mixed Case"'], schemas: [], mode: 'existing' }))).toEqual([233, 3758, 3588]);
    expect(ids(planSelection(toc, { tables: ['Shop.Customers'], schemas: [], mode: 'existing' }))).toContain(218);
    expect(() => planSelection(toc, { tables: ['"Shop"."Customers"'], schemas: [], mode: 'existing' })).toThrow('no table');
  });

  it('refuses what the backup does not have, all at once', () => {
    expect(() => planSelection(toc, { tables: ['nope'], schemas: ['ghost'], mode: 'new' })).toThrow(
      'The backup has no table "nope"; no schema "ghost". Nothing was restored.',
    );
    // A name typed with its own quotes is shown as typed, not wrapped in more.
    expect(() => planSelection(toc, { tables: ['public."Nope"'], schemas: [], mode: 'new' })).toThrow(
      'The backup has no table public."Nope". Nothing was restored.',
    );
    expect(() => planSelection(toc, { tables: [], schemas: [], mode: 'new' })).toThrow('Name at least one table or schema');
  });
});

describe('names read as SQL reads them (QA: --table=Account overwrote "Account", not account)', () => {
  const tables = (specs: Array<[number, string, string]>) =>
    parseToc(
      specs.map(([id, schema, name]) => `${id}; 1259 ${17000 + id} TABLE ${schema} ${name} postgres`).join('\n'),
      specs.map(([id, schema, name]) => header(id, 17000 + id, [], name, 'TABLE', schema)).join(''),
    );
  const pick = (toc: ReturnType<typeof parseToc>, request: { tables?: string[]; schemas?: string[] }) =>
    planSelection(toc, { tables: request.tables ?? [], schemas: request.schemas ?? [], mode: 'existing' }).relations;

  it('an unquoted name is folded to lower case first; a quoted one is taken exactly', () => {
    const both = tables([
      [1, 'public', 'account'],
      [2, 'public', 'Account'],
    ]);
    expect(pick(both, { tables: ['Account'] })).toEqual(['public.account']);
    expect(pick(both, { tables: ['ACCOUNT'] })).toEqual(['public.account']);
    expect(pick(both, { tables: ['"Account"'] })).toEqual(['public.Account']);
    expect(pick(both, { tables: ['public."Account"'] })).toEqual(['public.Account']);
  });

  it('with no table of the folded name, one of any case is taken, and two are refused, naming both', () => {
    const prisma = tables([
      [1, 'public', 'User'],
      [2, 'Billing', 'Invoice'],
    ]);
    expect(pick(prisma, { tables: ['user'] })).toEqual(['public.User']);
    expect(pick(prisma, { tables: ['billing.invoice'] })).toEqual(['Billing.Invoice']);
    const two = tables([
      [1, 'public', 'User'],
      [2, 'public', 'USER'],
    ]);
    expect(() => pick(two, { tables: ['user'] })).toThrow('"user" matches public."User" and public."USER": name the one you mean as SQL does');
  });

  it('a quoted name that misses only by case is refused, suggesting the one it nearly names (QA: \'"audit log"\')', () => {
    const app = tables([
      [1, 'public', 'Audit Log'],
      [2, 'Billing', 'Invoice'],
    ]);
    expect(() => pick(app, { tables: ['"audit log"'] })).toThrow(
      `The backup has no table "audit log" (a quoted name is exact: did you mean --table='public."Audit Log"'?). Nothing was restored.`,
    );
    expect(() => pick(app, { tables: ['billing."invoice"'] })).toThrow(`did you mean --table='"Billing"."Invoice"'?`);
    expect(() => pick(app, { tables: ['"nothing like it"'] })).toThrow('The backup has no table "nothing like it". Nothing was restored.');
  });

  it('a view named as a table is said as a view, with how to have it (QA: "no table "public.recent_audit"")', () => {
    const toc = parseToc(
      ['1; 1259 17001 TABLE public audit postgres', '2; 1259 17002 VIEW public recent_audit postgres'].join('\n'),
      [header(1, 17001, [], 'audit', 'TABLE', 'public'), header(2, 17002, [1], 'recent_audit', 'VIEW', 'public')].join(''),
    );
    expect(() => pick(toc, { tables: ['public.recent_audit'] })).toThrow(
      'The backup has a view public.recent_audit, not a table: restore its schema (--schema=public), or the tables it reads. Nothing was restored.',
    );
  });

  it('no table of another case is taken for a name a view holds folded (review: a view account beside a table "Account")', () => {
    const toc = parseToc(
      ['1; 1259 17001 TABLE public Account postgres', '2; 1259 17002 VIEW public account postgres'].join('\n'),
      [header(1, 17001, [], 'Account', 'TABLE', 'public'), header(2, 17002, [1], 'account', 'VIEW', 'public')].join(''),
    );
    expect(() => pick(toc, { tables: ['Account'] })).toThrow('The backup has a view public.account, not a table');
    expect(pick(toc, { tables: ['"Account"'] })).toEqual(['public.Account']);
  });

  it('--schema= the same way: quoted exactly, unquoted folded, else of any case', () => {
    const schemas = tables([
      [1, 'Billing', 'Invoice'],
      [2, 'audit', 'log'],
    ]);
    expect(pick(schemas, { schemas: ['"Billing"'] })).toEqual(['Billing.Invoice']);
    expect(pick(schemas, { schemas: ['Billing'] })).toEqual(['Billing.Invoice']);
    expect(pick(schemas, { schemas: ['AUDIT'] })).toEqual(['audit.log']);
    expect(() => pick(schemas, { schemas: ['"billing"'] })).toThrow('The backup has no schema "billing". Nothing was restored.');
  });
});

describe('parseTableRef', () => {
  it('splits schema and table, honouring quotes', () => {
    expect(parseTableRef('orders')).toMatchObject({ schema: null, table: 'orders', quoted: false });
    expect(parseTableRef('shop.orders')).toMatchObject({ schema: 'shop', table: 'orders', quoted: false });
    expect(parseTableRef('"my.schema"."Odd ""name"""')).toMatchObject({ schema: 'my.schema', table: 'Odd "name"', quoted: true });
    expect(() => parseTableRef('a.b.c')).toThrow('is not a table name');
    expect(() => parseTableRef('')).toThrow('is not a table name');
  });
});
