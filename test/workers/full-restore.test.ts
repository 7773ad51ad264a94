import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { replacedName, stagingName } from '../../src/postgres/restore/index.ts';
import { runReplacement } from '../../src/workers/full-restore.ts';
import { appBackedUp } from '../support/app-backups.ts';
import { runSql } from '../support/databases.ts';
import { fingerprint } from '../support/fingerprint.ts';
import { silentLog, withClient } from '../support/postgres-helpers.ts';
import { until } from '../support/until.ts';

/** A replacement whose earlier attempt was killed mid-restore: the staging database it left does not block the retry. */
describe('runReplacement after a killed attempt', () => {
  let setup: Awaited<ReturnType<typeof appBackedUp>>;
  beforeAll(async () => {
    setup = await appBackedUp(inject('pgUrl'), 'retry');
  });
  afterAll(async () => setup?.cleanup());

  it('drops the staging database the dead attempt left, then replaces and keeps the old one', async () => {
    const { app, store, manifest } = setup;
    const jobId = `retry-${Date.now()}`;
    // What a worker killed in the middle of the restore leaves: the job's staging database, half filled.
    await runSql(inject('pgUrl'), `CREATE DATABASE "${stagingName(jobId)}"`);
    await runSql(app.url.replace(app.name, stagingName(jobId)), 'CREATE TABLE half_done (x int)');
    const atBackup = await fingerprint(app.url);
    await runSql(app.url, 'DELETE FROM public."Audit Log"');
    const now = new Date();
    const outcome = await runReplacement(
      { config: loadConfig({}, 'offline'), storage: store.storage },
      { manifest, serverUrl: app.url, database: app.name, jobId, log: silentLog, progress: () => undefined, now },
    );
    expect(outcome.problems).toEqual([]);
    expect(outcome.passed).toBe(true);
    expect((await fingerprint(app.url)).tables).toEqual(atBackup.tables);
    const kept = outcome.keptAs ?? '';
    expect(kept).toMatch(new RegExp(`^${app.name}_replaced_`));
    // Where the rows written after the backup are: in the kept database, named, with the backup's time.
    expect(outcome.notes[0]).toMatch(
      new RegExp(
        `kept as ${kept} until an admin drops it: whatever was written after the backup \\(taken \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d UTC\\) is there, not in ${app.name}\\.$`,
      ),
    );
    const names = await withClient(inject('pgUrl'), async (c) =>
      (await c.query<{ datname: string }>('SELECT datname FROM pg_database')).rows.map((r) => r.datname),
    );
    expect(names).not.toContain(stagingName(jobId));
    await runSql(inject('pgUrl'), `DROP DATABASE "${kept}" WITH (FORCE)`);
  });

  it('a cancel while pg_amcheck checks the copy swaps nothing: the database untouched, the copy dropped (QA)', async () => {
    const { app, store, manifest } = setup;
    const jobId = `cancel-${Date.now()}`;
    await runSql(app.url, 'CREATE TABLE IF NOT EXISTS written_after (x int)');
    const before = await fingerprint(app.url);
    const controller = new AbortController();
    const phases: string[] = [];
    const err = await runReplacement(
      { config: loadConfig({}, 'offline'), storage: store.storage },
      {
        manifest,
        serverUrl: app.url,
        database: app.name,
        jobId,
        signal: controller.signal,
        log: silentLog,
        // Ctrl-C as pg_amcheck starts: the QA run swapped anyway, "verified (… amcheck NOT run …)".
        progress: (p) => {
          phases.push(p.phase);
          if (p.detail?.startsWith('pg_amcheck')) controller.abort();
        },
        now: new Date(),
      },
    ).then(
      (outcome): { code?: string; userMessage?: string } => ({ code: `not canceled: ${JSON.stringify(outcome.notes)}` }),
      (e: unknown) => e as { code?: string; userMessage?: string },
    );
    expect(err.code).toBe('canceled');
    // The database said untouched, as a failed check says it (QA: only the staging copy's drop was said).
    expect(err.userMessage).toMatch(new RegExp(`was canceled; .*${app.name} was not touched\\.$`));
    expect(phases).not.toContain('swapping');
    expect(await fingerprint(app.url)).toEqual(before);
    const names = await withClient(inject('pgUrl'), async (c) =>
      (await c.query<{ datname: string }>('SELECT datname FROM pg_database')).rows.map((r) => r.datname),
    );
    expect(names).not.toContain(stagingName(jobId));
    expect(names.filter((n) => n.startsWith(`${app.name}_replaced_`))).toEqual([]);
    await runSql(app.url, 'DROP TABLE written_after');
  });

  it('opens the database first when the dead attempt was killed in its swap, after closing it to new sessions', async () => {
    const { app, store, manifest } = setup;
    const jobId = `swap-${Date.now()}`;
    // Killed between ALTER DATABASE … ALLOW_CONNECTIONS false and the renames: the rollback does not undo the first.
    await runSql(inject('pgUrl'), `CREATE DATABASE "${stagingName(jobId)}"`);
    await runSql(inject('pgUrl'), `ALTER DATABASE "${app.name}" ALLOW_CONNECTIONS false`);
    const outcome = await runReplacement(
      { config: loadConfig({}, 'offline'), storage: store.storage },
      { manifest, serverUrl: app.url, database: app.name, jobId, log: silentLog, progress: () => undefined, now: new Date() },
    );
    expect(outcome.problems).toEqual([]);
    expect(outcome.passed).toBe(true);
    expect(outcome.notes).toContain(
      `${app.name} refused connections: an earlier attempt of this job was stopped during its swap, after closing ${app.name} to new sessions; it takes connections again.`,
    );
    const allowed = await withClient(
      inject('pgUrl'),
      async (c) =>
        (
          await c.query<{ datname: string; datallowconn: boolean }>('SELECT datname, datallowconn FROM pg_database WHERE datname = $1 OR datname = $2', [
            app.name,
            outcome.keptAs,
          ])
        ).rows,
    );
    expect(allowed.map((r) => r.datallowconn)).toEqual([true, true]);
    await runSql(inject('pgUrl'), `DROP DATABASE "${outcome.keptAs}" WITH (FORCE)`);
  });

  it('a swap that fails leaves the database as it was and names the verified copy it keeps, for the record and `/restore list`', async () => {
    const { app, store, manifest } = setup;
    const jobId = `swapfail-${Date.now()}`;
    const now = new Date();
    // The name the old database would be kept under is taken: the rename fails inside the swap's transaction.
    await runSql(inject('pgUrl'), `CREATE DATABASE "${replacedName(app.name, now)}"`);
    const before = await fingerprint(app.url);
    await runSql(app.url, 'CREATE TABLE public.written_after (x int)');
    try {
      const outcome = await runReplacement(
        { config: loadConfig({}, 'offline'), storage: store.storage },
        { manifest, serverUrl: app.url, database: app.name, jobId, log: silentLog, progress: () => undefined, now },
      );
      expect(outcome.passed).toBe(false);
      expect(outcome.problems).toEqual([
        expect.stringMatching(new RegExp(`^The swap on .* did not happen \\(.*\\); ${app.name} is as it was and takes connections again\\.$`)),
      ]);
      expect(outcome.staging).toBe(stagingName(jobId));
      expect(outcome.notes[0]).toMatch(
        new RegExp(
          `^The verified copy is kept as ${stagingName(jobId)} on .* \\(\`restore drop ${stagingName(jobId)}\` removes it, in Slack or the CLI\\)\\.$`,
        ),
      );
      expect((await fingerprint(app.url)).tables).toEqual({ ...before.tables, 'public.written_after': expect.anything() });
      expect((await fingerprint(app.url.replace(app.name, stagingName(jobId)))).tables).toEqual(before.tables);
    } finally {
      await runSql(inject('pgUrl'), `DROP DATABASE IF EXISTS "${replacedName(app.name, now)}"`);
      await runSql(inject('pgUrl'), `DROP DATABASE IF EXISTS "${stagingName(jobId)}" WITH (FORCE)`);
      await runSql(app.url, 'DROP TABLE IF EXISTS public.written_after');
    }
  });

  it('replaces a database owned by its application role (not the bot’s): verified with that owner, and kept so', async () => {
    const owned = await appBackedUp(inject('pgUrl'), 'owned', { ownedByRole: true });
    try {
      const { app, store, manifest } = owned;
      const jobId = `owned-${Date.now()}`;
      const atBackup = await fingerprint(app.url);
      await runSql(app.url, 'DELETE FROM public."Audit Log"');
      const outcome = await runReplacement(
        { config: loadConfig({}, 'offline'), storage: store.storage },
        { manifest, serverUrl: app.url, database: app.name, jobId, log: silentLog, progress: () => undefined, now: new Date() },
      );
      expect(outcome.problems).toEqual([]);
      expect(outcome.passed).toBe(true);
      expect((await fingerprint(app.url)).tables).toEqual(atBackup.tables);
      const owners = await withClient(inject('pgUrl'), async (c) =>
        (
          await c.query<{ datname: string; owner: string }>(
            'SELECT datname, pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname = ANY($1) ORDER BY datname',
            [[app.name, outcome.keptAs]],
          )
        ).rows.map((r) => r.owner),
      );
      expect(owners).toEqual([app.role, app.role]);
      await runSql(inject('pgUrl'), `DROP DATABASE "${outcome.keptAs}" WITH (FORCE)`);
    } finally {
      await owned.cleanup();
    }
  });

  it('a replacement confirmed for another database of that name (replaced or recreated since) changes nothing', async () => {
    const { app, store, manifest } = setup;
    const before = await fingerprint(app.url);
    await expect(
      runReplacement(
        { config: loadConfig({}, 'offline'), storage: store.storage },
        {
          manifest,
          serverUrl: app.url,
          database: app.name,
          jobId: `stale-${Date.now()}`,
          log: silentLog,
          progress: () => undefined,
          now: new Date(),
          expectedOid: 1,
        },
      ),
    ).rejects.toThrow(`\`${app.name}\` is not the database this confirmation described: it was replaced or recreated since`);
    expect(await fingerprint(app.url)).toEqual(before);
  });

  it('two replacements of one database at once: the second is refused at once and changes nothing (QA: both swapped)', async () => {
    const { app, store, manifest } = setup;
    const before = await fingerprint(app.url);
    const replace = (jobId: string) =>
      runReplacement(
        { config: loadConfig({}, 'offline'), storage: store.storage },
        { manifest, serverUrl: app.url, database: app.name, jobId, log: silentLog, progress: () => undefined, now: new Date() },
      );
    const firstId = `first-${Date.now()}`;
    const first = replace(firstId);
    // The second starts once the first holds the lock (its first step; then it restores into its staging copy). Not
    // after a fixed pause: on a loaded machine the first had not taken it yet, and the second won (CI, isolate off).
    await until('the first replacement to hold its lock', () =>
      withClient(inject('pgUrl'), async (c) => {
        const { rows } = await c.query(
          `SELECT 1 FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE l.locktype = 'advisory' AND l.granted AND a.application_name = $1`,
          [`pg-backup-bot replace ${firstId}`],
        );
        return rows.length > 0 ? true : undefined;
      }),
    );
    await expect(replace(`second-${Date.now()}`)).rejects.toThrow(`Another replacement of ${app.name} on `);
    const outcome = await first;
    expect(outcome.passed).toBe(true);
    expect((await fingerprint(app.url)).tables).toEqual(before.tables);
    const kept = await withClient(inject('pgUrl'), async (c) =>
      (await c.query<{ datname: string }>('SELECT datname FROM pg_database WHERE datname LIKE $1', [`${app.name}_replaced_%`])).rows.map((r) => r.datname),
    );
    expect(kept).toEqual([outcome.keptAs]);
    for (const k of kept) await runSql(inject('pgUrl'), `DROP DATABASE "${k}" WITH (FORCE)`);
  });

  it('a retry of the same job whose dead attempt still holds the lock (its host gone, its session not yet) ends that session and goes on', async () => {
    const { app, store, manifest } = setup;
    const jobId = `retry-lock-${Date.now()}`;
    // The dead attempt's session, as the lock took it: the job's name, the lock held, never released.
    const { Client } = (await import('pg')).default;
    const ghost = new Client({ connectionString: inject('pgUrl'), application_name: `pg-backup-bot replace ${jobId}` });
    ghost.on('error', () => undefined);
    await ghost.connect();
    await ghost.query('SELECT pg_advisory_lock($1, hashtext($2))', [0x70676262, app.name]);
    const outcome = await runReplacement(
      { config: loadConfig({}, 'offline'), storage: store.storage },
      { manifest, serverUrl: app.url, database: app.name, jobId, log: silentLog, progress: () => undefined, now: new Date() },
    );
    expect(outcome.problems).toEqual([]);
    expect(outcome.passed).toBe(true);
    await ghost.end().catch(() => undefined);
    await runSql(inject('pgUrl'), `DROP DATABASE "${outcome.keptAs}" WITH (FORCE)`);
  });
});
