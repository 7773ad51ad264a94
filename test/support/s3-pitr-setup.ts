import { chmod, chown, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { loadConfig, type Config } from '../../src/config.ts';
import { generateKeyPair } from '../../src/crypto/age.ts';
import { asServerUser, startEphemeralPostgres, type EphemeralPostgres } from '../../src/dev/ephemeral.ts';
import { readWalState } from '../../src/jobs/wal-state.ts';
import { takeBaseBackup } from '../../src/postgres/pitr/take-base-backup.ts';
import type { WalArchives } from '../../src/workers/wal-archives.ts';
import { withClient } from './postgres-helpers.ts';
import { TEST_CREDENTIALS, startS3Server, type TestS3Server } from './s3-server.ts';

export interface S3Pitr {
  source: EphemeralPostgres;
  s3: TestS3Server;
  dir: string;
  /** The env a worker and the CLI get: target `app` with PITR, age keys, S3 in `mode`, BACKUP_DIR `<dir>/worker-disk`. */
  env: Record<string, string>;
  config: Config;
  redis: Redis;
}

/**
 * A cluster streaming to an encrypted PITR archive with S3 (copy or primary), as the S3 PITR tests share it: a
 * real PostgreSQL, the S3 stand-in, an age key pair, the config file and env. The caller starts the WAL archives.
 */
export async function setUpS3Pitr(o: {
  mode: 'copy' | 'primary';
  bucket: string;
  slot: string;
  pitrExtra?: string;
  prefix: string;
  redisUrl: string;
}): Promise<S3Pitr> {
  const [source, s3] = await Promise.all([startEphemeralPostgres({ settings: { full_page_writes: 'on' } }), startS3Server(o.bucket)]);
  // The SDK's default credential chain, as in production; the restore's CLI inherits it.
  process.env.AWS_ACCESS_KEY_ID = TEST_CREDENTIALS.accessKeyId;
  process.env.AWS_SECRET_ACCESS_KEY = TEST_CREDENTIALS.secretAccessKey;
  const dir = await mkdtemp(join(tmpdir(), `pgbb-s3${o.mode}-`));
  const keys = await generateKeyPair();
  const identityFile = join(dir, 'key.txt');
  await writeFile(identityFile, keys.identityFileText, { mode: 0o600 });
  const pitr = `{ urlEnv: APP_URL, slot: ${o.slot}${o.pitrExtra ? `, ${o.pitrExtra}` : ''} }`;
  await writeFile(join(dir, 'bot.yml'), `targets:\n  - name: app\n    urlEnv: APP_URL\n    environment: production\n    pitr: ${pitr}\n`);
  const env = {
    BOT_CONFIG: join(dir, 'bot.yml'),
    APP_URL: source.url,
    BACKUP_DIR: join(dir, 'worker-disk'),
    BACKUP_ENCRYPTION_RECIPIENT: keys.recipient,
    BACKUP_ENCRYPTION_IDENTITY_FILE: identityFile,
    REDIS_URL: o.redisUrl,
    QUEUE_PREFIX: o.prefix,
    S3_BUCKET: s3.bucket,
    S3_ENDPOINT: s3.endpoint,
    S3_FORCE_PATH_STYLE: 'true',
    S3_MODE: o.mode,
    S3_PREFIX: 'pgbb',
    AWS_ACCESS_KEY_ID: TEST_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: TEST_CREDENTIALS.secretAccessKey,
  };
  return { source, s3, dir, env, config: loadConfig(env, 'offline'), redis: new Redis(o.redisUrl) };
}

/**
 * After the archives started: the markers table (`before-1`), a base backup reserving its WAL, and the fetched
 * archive and the key readable by the server's user (the restored server runs restore_command as itself).
 */
export async function seedForRecovery(p: S3Pitr): Promise<void> {
  await withClient(p.source.url, (c) =>
    c.query("CREATE TABLE markers (label text, at timestamptz DEFAULT clock_timestamp()); INSERT INTO markers VALUES ('before-1')"),
  );
  await takeBaseBackup(p.config, p.config.targets[0] as Config['targets'][number], { reserveWal: true });
  const user = await asServerUser();
  if (user.uid !== undefined) {
    await chmod(p.dir, 0o755);
    await chown(p.env.BACKUP_ENCRYPTION_IDENTITY_FILE ?? '', user.uid, user.gid as number);
  }
}

export async function tearDownS3Pitr(p: Partial<S3Pitr>, archives: WalArchives | undefined): Promise<void> {
  await archives?.stop();
  p.redis?.disconnect();
  await p.source?.stop();
  await p.s3?.close();
  if (p.dir) await rm(p.dir, { recursive: true, force: true });
}

/**
 * A marker row, then a switch: the segment the switch completed, which holds the row (pg_current_wal_lsn() may
 * still be at the segment's start while the commit is unwritten with synchronous_commit off).
 */
export const switchSegment = (url: string, label: string) =>
  withClient(url, async (c) => {
    await c.query('INSERT INTO markers VALUES ($1)', [label]);
    const { rows } = await c.query<{ name: string }>('SELECT pg_walfile_name(pg_switch_wal()) AS name');
    return rows[0]?.name as string;
  });

type WalState = NonNullable<Awaited<ReturnType<typeof readWalState>>>;

/** The target's WAL state once `ok` holds (polled every 100 ms, at most a minute). */
export async function walStateUntil(redis: Redis, prefix: string, ok: (s: WalState) => boolean, what: string): Promise<WalState> {
  for (let i = 0; ; i++) {
    const s = await readWalState(redis, prefix, 'app');
    if (s && ok(s)) return s;
    if (i > 600) throw new Error(`never ${what}: ${JSON.stringify(s)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
