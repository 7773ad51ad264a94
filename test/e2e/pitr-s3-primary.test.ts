import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type EphemeralPostgres, startEphemeralPostgres } from '../../src/dev/ephemeral.ts';
import { s3PitrStore } from '../../src/postgres/pitr/s3-pitr-store.ts';
import { withClient } from '../support/postgres-helpers.ts';
import { TEST_CREDENTIALS, startS3Server, type TestS3Server } from '../support/s3-server.ts';
import { channelMessage, jobIdOf, slash, startHarness, type Harness } from './harness.ts';

/**
 * Point-in-time recovery with S3 as the primary store (S3_MODE=primary), as the bot runs it: Bolt's HTTP receiver,
 * the base-backup worker and the WAL archive of the same service, the Slack stand-in, the S3 stand-in. The base
 * backup goes straight into the bucket, and is called recoverable once its WAL is there too.
 */
let h: Harness;
let pg: EphemeralPostgres;
let s3: TestS3Server;
let work: string;

beforeAll(async () => {
  [pg, s3] = await Promise.all([startEphemeralPostgres(), startS3Server('pgbb-e2e-primary')]);
  // The SDK's default credential chain, as in production.
  process.env.AWS_ACCESS_KEY_ID = TEST_CREDENTIALS.accessKeyId;
  process.env.AWS_SECRET_ACCESS_KEY = TEST_CREDENTIALS.secretAccessKey;
  await withClient(pg.url, (c) => c.query('CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 20000) g'));
  work = await mkdtemp(join(tmpdir(), 'pgbb-e2e-base-s3-'));
  const cfg = join(work, 'pg-backup-bot.yml');
  await writeFile(cfg, ['targets:', '  - name: app', '    urlEnv: APP_URL', '    environment: production', '    pitr: { urlEnv: APP_URL }', ''].join('\n'));
  h = await startHarness({
    pgUrl: inject('pgUrl'),
    redisUrl: inject('redisUrl'),
    env: {
      BOT_CONFIG: cfg,
      APP_URL: pg.url,
      S3_BUCKET: s3.bucket,
      S3_ENDPOINT: s3.endpoint,
      S3_FORCE_PATH_STYLE: 'true',
      S3_MODE: 'primary',
      S3_PREFIX: 'pgbb',
    },
  });
}, 60_000);

afterAll(async () => {
  await h?.stop();
  await pg?.stop();
  await s3?.close();
  await rm(work, { recursive: true, force: true });
});

describe('PITR with S3 as the primary store, through Slack', () => {
  it('streams the base backup into the bucket, calls it recoverable once its WAL is there, and /backup list shows the window', async () => {
    const res = await slash(h, '/backup', 'now --physical app');
    expect(res.status).toBe(200);
    const jobId = jobIdOf(res.text) ?? '';
    expect(jobId).toMatch(/^base-backup-app-/);

    const msg = await channelMessage(h, jobId, /succeeded/, 150_000);
    const shown = JSON.stringify(msg.blocks ?? []);
    expect(shown).toContain('hashed as uploaded to S3, size checked there');
    // Recoverable only once the bucket holds its WAL: the worker's spool does not count.
    expect(shown).toContain('to any moment after it ended: its WAL is archived');

    const remote = s3PitrStore(h.config, 'app', { credentials: TEST_CREDENTIALS });
    if (!remote) throw new Error('no S3 store configured');
    try {
      const bases = await remote.listBases();
      expect(bases.map((b) => b.id)).toHaveLength(1);
      const b = bases[0] as NonNullable<(typeof bases)[0]>;
      expect(msg.text).toContain(b.id);
      const thread = [...h.slack.messages.values()].filter((m) => m.thread_ts === msg.ts).map((m) => m.text ?? '');
      expect(thread.join('\n')).toContain(`s3://pgbb-e2e-primary/pgbb/app/_base/${b.id}/base.tar.zst.age`);
    } finally {
      remote.client.destroy();
    }
    // Nothing of it on the worker's disk.
    expect(await readdir(join(h.backupDir, 'app', '_base')).catch(() => [])).toEqual([]);

    const list = await slash(h, '/backup', 'list app');
    expect(list.ms).toBeLessThan(3000);
    expect(list.text).toContain('recoverable to any moment from');
  }, 240_000);

  it('/restore-test pitr plans on the bucket and recovers from it', async () => {
    const name = await withClient(pg.url, async (c) => {
      await c.query("INSERT INTO t VALUES (0, 'after the base backup')");
      const { rows } = await c.query<{ name: string }>('SELECT pg_walfile_name(pg_switch_wal()) AS name');
      return rows[0]?.name as string;
    });
    const remote = s3PitrStore(h.config, 'app', { credentials: TEST_CREDENTIALS });
    if (!remote) throw new Error('no S3 store configured');
    try {
      for (let i = 0; !(await remote.listWal()).some((w) => w.name === name && w.file !== null); i++) {
        if (i > 120) throw new Error(`WAL ${name} never reached the bucket`);
        await new Promise((r) => setTimeout(r, 500));
      }
    } finally {
      remote.client.destroy();
    }
    const reply = await slash(h, '/restore-test', 'pitr app latest');
    expect(reply.ms).toBeLessThan(3000);
    expect(reply.text).toMatch(/^PITR restore test of \*app\* to the latest moment queued: job `/);
    const verdict = await channelMessage(h, jobIdOf(reply.text) as string, /PITR restore test of app (passed|FAILED)/, 180_000);
    const blocks = JSON.stringify(verdict.blocks);
    expect(verdict.text, blocks).toMatch(/^PITR restore test of app passed \(recovered to \d{4}-/);
    expect(blocks).toContain(':white_check_mark: *archive in S3*:');
    expect(blocks).toContain('fetched from s3://pgbb-e2e-primary/pgbb/app, every sha256 matching');
  }, 240_000);
});
