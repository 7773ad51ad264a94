import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { Archive } from '../../../src/postgres/restore/archive.ts';
import { runRestoreTest } from '../../../src/postgres/restore/index.ts';
import { checkRestored } from '../../../src/postgres/restore/restored-checks.ts';
import { databaseUrl, dropDatabase } from '../../../src/postgres/restore/scratch.ts';
import { openStoredArchive, restoreTools } from '../../../src/postgres/restore/stored-archive.ts';
import { amcheckRestored, compareWithArchive, type VerifyOptions } from '../../../src/postgres/verify/index.ts';
import { restoreTestFinished, restoreTestProblems } from '../../../src/notifications/restore-messages.ts';
import type { Manifest } from '../../../src/storage/index.ts';
import type { AppDatabase } from '../../support/app-database.ts';
import { appBackedUp } from '../../support/app-backups.ts';
import { silentLog, type tempStorage, withClient } from '../../support/postgres-helpers.ts';

/**
 * Issue 14's damages, one at a time, each on a fresh full restore of the application-shaped fixture: the
 * comparison with the archive must name what differs. A restore test at level `counts` passed every one of them.
 */
const DAMAGES: Array<{ name: string; sql: string; named: RegExp[] }> = [
  {
    name: 'policies dropped and RLS disabled',
    sql: 'DROP POLICY "tenant_isolation" ON public."Post"; ALTER TABLE public."Post" DISABLE ROW LEVEL SECURITY',
    named: [/^POLICY public\.Post tenant_isolation: missing/, /^ROW SECURITY public\.Post: missing/],
  },
  {
    name: 'every large object unlinked',
    sql: 'SELECT lo_unlink(oid) FROM pg_largeobject_metadata',
    named: [/^LARGE OBJECT \d+: missing/, /^BLOB \d+: missing/],
  },
  {
    name: 'a materialized view emptied',
    sql: 'REFRESH MATERIALIZED VIEW billing."MonthlyTotals" WITH NO DATA',
    named: [/^MATERIALIZED VIEW DATA billing\.MonthlyTotals: missing/],
  },
  { name: 'a column default dropped', sql: 'ALTER TABLE public."User" ALTER COLUMN "id" DROP DEFAULT', named: [/^DEFAULT public\.User id: missing/] },
  {
    name: 'an enum value renamed',
    sql: `ALTER TYPE billing."InvoiceState" RENAME VALUE 'void' TO 'voided'`,
    named: [/^TYPE billing\.InvoiceState: the backup has .*'void'.*, the restored copy .*'voided'/, /^table billing\.Invoice: content differs/],
  },
  {
    name: 'a sequence set back to 1',
    sql: `SELECT setval('public."User_id_seq"', 1)`,
    named: [/^SEQUENCE SET public\.User_id_seq: the backup has `SELECT pg_catalog\.setval\('public\."User_id_seq"', 300, true\);`/],
  },
  {
    name: 'a trigger disabled and its function rewritten',
    sql: `ALTER TABLE billing."Invoice" DISABLE TRIGGER "invoice_amount"; CREATE OR REPLACE FUNCTION billing."keepAmount"() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$`,
    named: [
      /^FUNCTION billing\.keepAmount\(\): the backup has/,
      /^TRIGGER billing\.Invoice invoice_amount: the restored copy has `ALTER TABLE billing\."Invoice" DISABLE TRIGGER invoice_amount;`, which the backup does not$/,
    ],
  },
  {
    name: 'every value of one column overwritten',
    sql: `UPDATE public."Audit Log" SET "what" = 'overwritten'`,
    named: [/^table public\.Audit Log: content differs/],
  },
  {
    name: 'a CHECK constraint redefined',
    sql: `ALTER TABLE billing."Invoice" DROP CONSTRAINT "Invoice_amountCents_check", ADD CONSTRAINT "Invoice_amountCents_check" CHECK ("amountCents" >= -100)`,
    named: [/^TABLE billing\.Invoice: the backup has .*>= 0.*, the restored copy .*>= '?-100/],
  },
  {
    name: 'a database setting reset',
    sql: `DO $$ BEGIN EXECUTE format('ALTER DATABASE %I RESET timezone', current_database()); END $$`,
    named: [/^DATABASE PROPERTIES :database: the backup has `ALTER DATABASE :database SET "?(timezone|TimeZone)"? TO 'America\/New_York';`/],
  },
  // One statement more, or one value changed: the verdict pairs the lines that belong together (QA: "the backup has
  // … CONNECTION LIMIT = 50, the restored copy … SET search_path", its neighbour).
  {
    name: 'a connection limit set',
    sql: `DO $$ BEGIN EXECUTE format('ALTER DATABASE %I CONNECTION LIMIT 3', current_database()); END $$`,
    named: [/^DATABASE PROPERTIES :database: the restored copy has `ALTER DATABASE :database CONNECTION LIMIT = 3;`, which the backup does not$/],
  },
  {
    name: 'a per-role setting changed',
    sql: `DO $$ BEGIN EXECUTE format('ALTER ROLE %I IN DATABASE %I SET work_mem = ''16MB''', (SELECT rolname FROM pg_roles r JOIN pg_db_role_setting s ON s.setrole = r.oid JOIN pg_database d ON d.oid = s.setdatabase AND d.datname = current_database() LIMIT 1), current_database()); END $$`,
    named: [
      /^DATABASE PROPERTIES :database: the backup has `ALTER ROLE \S+ IN DATABASE :database SET work_mem TO '8MB';`, the restored copy `ALTER ROLE \S+ IN DATABASE :database SET work_mem TO '16MB';`$/,
    ],
  },
  {
    name: 'a column dropped',
    sql: 'ALTER TABLE public."Audit Log" DROP COLUMN "what"',
    named: [
      /^TABLE public\.Audit Log: /,
      /^table public\.Audit Log: columns differ: the backup has `COPY public\."Audit Log" \(id, at, actor, what\) FROM stdin;`/,
    ],
  },
];

describe('a restored copy damaged after the restore, compared with its archive', () => {
  let app: AppDatabase;
  let store: Awaited<ReturnType<typeof tempStorage>>;
  let manifest: Manifest;
  let tempDir: string;
  let cleanup: () => Promise<void>;
  let archive: Archive;
  let tools: Awaited<ReturnType<typeof restoreTools>>;
  const server = () => inject('pgUrl');

  beforeAll(async () => {
    ({ app, store, manifest, tempDir, cleanup } = await appBackedUp(server(), 'damage'));
    tools = await restoreTools({ manifest });
    archive = await openStoredArchive({ manifest, storage: store.storage, tempDir, log: silentLog }, tools, {
      identity: undefined,
      signal: undefined,
      log: silentLog,
    });
  });
  afterAll(async () => {
    await archive?.close();
    await cleanup?.();
  });

  /** A full restore of the backup at `verify` (the default level unless said), kept as `<app>_<name>`. */
  const keptRestore = (database: string, verify?: 'counts') =>
    runRestoreTest({
      manifest,
      storage: store.storage,
      serverUrl: server(),
      scratchKey: `job:${database}`,
      tempDir,
      keep: { database },
      ...(verify ? { verify } : {}),
      log: silentLog,
    });

  /** A full restore of the backup (verified, kept), damaged, then compared; dropped after. */
  async function damaged(name: string, sql: string | null) {
    const database = `${app.name}_${name}`;
    const restored = await keptRestore(database);
    expect(restored.problems).toEqual([]);
    const url = databaseUrl(server(), database);
    try {
      if (sql) await withClient(url, (c) => c.query(sql));
      const v: VerifyOptions = { archive, manifest, url, database, pgDump: tools.pgDump, pgDumpMajor: tools.major, owners: false, log: silentLog };
      const compared = await compareWithArchive(v);
      // pg_amcheck on the undamaged copy only: the damages are of content and definitions, which it does not judge.
      const amcheck = sql ? null : await amcheckRestored({ ...v, level: 'full', keep: true });
      return { compared, amcheck, passedCounts: restored.passed };
    } finally {
      await dropDatabase(server(), database);
    }
  }

  it('finds nothing on an undamaged copy, and amcheck with --heapallindexed is clean', async () => {
    const { compared, amcheck } = await damaged('intact', null);
    expect(compared).toMatchObject({ compared: true, tables: 4, largeObjects: 50, differences: [] });
    if (!compared.compared) throw new Error('not compared');
    expect(compared.definitions).toBeGreaterThan(80);
    expect(amcheck).toEqual({ ran: true, corruption: [] });
  });

  for (const d of DAMAGES) {
    it(`names the damage: ${d.name}`, async () => {
      const { compared } = await damaged(d.name.replace(/\W+/g, '_').slice(0, 20), d.sql);
      if (!compared.compared) throw new Error(`not compared: ${compared.why}`);
      for (const re of d.named) expect(compared.differences, `${re}`).toContainEqual(expect.stringMatching(re));
    });
  }

  it('the counts level alone names policies dropped, row-level security off and large objects unlinked (QA: it passed them)', async () => {
    expect(manifest.verification.objects).toMatchObject({ largeObjects: 50, policies: expect.any(Number), rowSecurityTables: expect.any(Number) });
    const { policies = 0, rowSecurityTables = 0 } = manifest.verification.objects;
    const database = `${app.name}_counts`;
    const restored = await keptRestore(database, 'counts');
    expect(restored.problems).toEqual([]);
    expect(restored.checked.objects).toEqual(expect.arrayContaining(['row-level security policies', 'tables with row-level security on', 'large objects']));
    const url = databaseUrl(server(), database);
    try {
      await withClient(url, (c) =>
        c.query(
          'DROP POLICY "tenant_isolation" ON public."Post"; ALTER TABLE public."Post" DISABLE ROW LEVEL SECURITY; SELECT lo_unlink(oid) FROM pg_largeobject_metadata',
        ),
      );
      // The checks a `counts` restore test runs on its copy, run again on the damaged one.
      const checks = await checkRestored({ url, manifest, smokeQueries: [], onPhase: () => undefined });
      expect(checks.comparison.problems).toEqual([
        `row-level security policies: ${policies} expected, ${policies - 1} restored`,
        `tables with row-level security on: ${rowSecurityTables} expected, ${rowSecurityTables - 1} restored`,
        'large objects: 50 expected, 0 restored',
      ]);
    } finally {
      await dropDatabase(server(), database);
    }
  });

  it('passes an undamaged restore at every level, and says which level ran', async () => {
    for (const verify of ['counts', 'content', 'full'] as const) {
      const outcome = await runRestoreTest({
        manifest,
        storage: store.storage,
        serverUrl: server(),
        scratchKey: `job:levels-${verify}-${app.name}`,
        tempDir,
        verify,
        log: silentLog,
      });
      expect(outcome.problems, verify).toEqual([]);
      expect(outcome.passed).toBe(true);
      expect(outcome.checked.level).toBe(verify);
      if (verify === 'counts') expect(outcome.checked.archive).toBeUndefined();
      else {
        expect(outcome.checked.archive).toMatchObject({
          compared: true,
          tables: 4,
          largeObjects: 50,
          differing: { tables: 0, definitions: 0, largeObjects: 0 },
        });
        expect(outcome.checked.amcheck).toEqual({ ran: true, corrupt: 0, heapallindexed: verify === 'full' });
      }
    }
  });

  it('puts the first differences in the verdict by name and all of them in the thread', async () => {
    const { compared } = await damaged('verdict', 'DROP POLICY "tenant_isolation" ON public."Post"; UPDATE public."Audit Log" SET "what" = \'x\'');
    if (!compared.compared) throw new Error('not compared');
    const problems = compared.differences;
    const req = { backupId: manifest.backupId, jobId: 'j1', target: 'app', requestedBy: { source: 'cli' as const, userName: 'test' } };
    const verdict = {
      passed: false,
      problems,
      restoreMs: 1,
      durationMs: 2,
      restoredBytes: 3,
      database: 'x',
      dropped: true,
      checked: { checksums: [], tables: 4, objects: [], smokeQueries: [] },
    };
    const message = JSON.stringify(restoreTestFinished(req, verdict, null));
    expect(message).toContain('POLICY public.Post tenant_isolation');
    expect(message).toContain('table public.Audit Log: content differs');
    expect(JSON.stringify(restoreTestProblems(problems))).toContain('tenant_isolation');
  });
});
