import { createHash } from 'node:crypto';
import { readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { findAgeEngine } from '../../src/crypto/age-cli.ts';
import { type EphemeralPostgres, startEphemeralPostgres } from '../../src/dev/ephemeral.ts';
import { runBaseBackup } from '../../src/postgres/pitr/base-backup.ts';
import { LocalWalStore } from '../../src/postgres/pitr/wal-store.ts';
import { findPgProgram, findPgTools } from '../../src/postgres/tools.ts';
import { withClient } from '../support/postgres-helpers.ts';
import { auditLines, channelMessage, type Harness, jobIdOf, slash, startHarness } from './harness.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let h: Harness;
let source: EphemeralPostgres;
let cfg: string;

beforeAll(async () => {
  // A cluster of its own: a base backup of the shared test server would copy every other test's databases.
  source = await startEphemeralPostgres({ settings: { full_page_writes: 'on' } });
  cfg = join(tmpdir(), `pgbb-pitrtest-${process.pid}-${Date.now()}.yml`);
  await writeFile(
    cfg,
    'encryption: age\ntargets:\n  - name: shop\n    urlEnv: SHOP_URL\n    environment: production\n    pitr: { urlEnv: SHOP_REPLICATION_URL, markers: { everySeconds: 5 } }\n',
  );
  h = await startHarness({
    pgUrl: inject('pgUrl'),
    redisUrl: inject('redisUrl'),
    env: { BOT_CONFIG: cfg, SHOP_URL: source.url, SHOP_REPLICATION_URL: source.url },
  });
}, 120_000);

afterAll(async () => {
  await h?.stop();
  await source?.stop();
  await rm(cfg, { force: true });
});

/** Ends the current segment and waits until the bot's archive holds it. */
async function switchAndWait(): Promise<void> {
  const name = await withClient(source.url, async (c) => {
    const { rows } = await c.query<{ name: string }>('SELECT pg_walfile_name(pg_current_wal_lsn()) AS name');
    await c.query('SELECT pg_switch_wal()');
    return rows[0]?.name as string;
  });
  const store = new LocalWalStore(h.backupDir, 'shop');
  for (let i = 0; !(await store.entry(name)); i++) {
    if (i > 600) throw new Error(`WAL ${name} never archived`);
    await sleep(100);
  }
}

describe('/restore-test pitr, as the bot runs it', () => {
  it('refuses a time without an offset or outside the window, naming the window', async () => {
    // Nothing recoverable yet: no base backup.
    expect((await slash(h, '/restore-test', 'pitr shop latest')).text).toMatch(/shop has no base backup yet: take one with `pg-backup-bot base-backup shop`/);
  });

  it('restores the latest moment into a scratch cluster, posts each check and the RTO by phase, and removes the cluster', async () => {
    const tools = await findPgTools({ serverMajor: 15 });
    await runBaseBackup({
      target: 'shop',
      root: h.backupDir,
      replicationUrl: source.url,
      pgBasebackup: (await findPgProgram('pg_basebackup', tools.pgDump, tools.major)) as string,
      zstd: 'zstd',
      level: 2,
      recipients: h.config.encryption.recipients,
      ageEngine: await findAgeEngine(),
    });
    await withClient(source.url, (c) => c.query('CREATE TABLE orders (id int PRIMARY KEY); INSERT INTO orders SELECT generate_series(1, 100)'));
    // Markers every 5 s: a few of them before the moment tested.
    await sleep(11_000);
    await switchAndWait();

    const outside = await slash(h, '/restore-test', 'pitr shop 2099-01-01 00:00:00+00');
    expect(outside.text).toMatch(/is outside what the archive holds: the recoverable window is \S+ to \S+/);
    expect((await slash(h, '/restore-test', 'pitr shop 2026-12-03 14:30')).text).toMatch(/has no UTC offset/);

    const reply = await slash(h, '/restore-test', 'pitr shop latest');
    expect(reply.text).toMatch(/^PITR restore test of \*shop\* to the latest moment queued: job `/);
    const jobId = jobIdOf(reply.text) as string;
    const verdict = await channelMessage(h, jobId, /PITR restore test of shop (passed|FAILED)/, 180_000);
    const blocks = JSON.stringify(verdict.blocks);
    expect(verdict.text, blocks).toMatch(/^PITR restore test of shop passed \(recovered to \d{4}-/);
    for (const check of [
      'WAL archive',
      'base backup (pg_verifybackup)',
      'recovery reached its target',
      'pg_amcheck, every database',
      'exact point (markers)',
    ]) {
      expect(blocks).toContain(`:white_check_mark: *${check}*:`);
    }
    expect(blocks).toMatch(/marker\(s\) written before the target present/);
    expect(blocks).toMatch(/RTO \(fetch \+ replay \+ checks\)/);
    expect(blocks).toContain('scratch cluster removed');
    const label = createHash('sha256').update(jobId).digest('hex').slice(0, 12);
    expect((await readdir(tmpdir())).filter((n) => n.startsWith(`pgbb-pitr-test-${label}-`))).toEqual([]);
    // Nothing paged for a pass; the request is in the audit trail with who asked.
    expect(h.pd.events.filter((e) => String(e.dedup_key).endsWith('/pitr-restore-test'))).toEqual([]);
    const audit = await auditLines(h);
    expect(audit.find((a) => a.what === '/restore-test' && a.args === 'pitr shop latest' && a.jobId === jobId)).toMatchObject({
      decision: 'allowed',
      userName: 'oncall',
    });
  }, 240_000);
});
