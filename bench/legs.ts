import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, open, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Queue, QueueEvents } from 'bullmq';
import { Redis } from 'ioredis';
import { execa, type Options } from 'execa';
import { RssWatcher, filesUnder, fsyncAll, machineCpuSeconds, totalBytes, type ProcPeak } from './measure.ts';
import { BENCH_S3_CREDENTIALS, startBenchS3, type BenchS3 } from './s3.ts';

/**
 * The leg registry. A backup leg (LEGS) is one way of producing a backup of the benchmark database; a restore
 * leg (RESTORE_LEGS) is one way of restoring the CLI's backup into a fresh database. run.ts times every leg
 * in alternating rounds, the backup legs first (a restore leg needs the CLI's backup). A new leg is one more
 * entry here.
 */

/** What run.ts needs from a child to stop it on Ctrl-C (execa's generic types do not narrow to one). */
export interface Tracked extends PromiseLike<unknown> {
  kill(signal?: NodeJS.Signals): unknown;
}

/**
 * How run.ts stops a child on Ctrl-C. Default: SIGKILL at once. The CLI instead gets SIGTERM and a grace
 * period, so it cancels its pg_restore and drops its own scratch database. Not SIGINT: a terminal's Ctrl-C
 * has already sent it one, and its handler is `once`: a second SIGINT would kill it before the drop.
 */
export interface StopHow {
  signal: NodeJS.Signals;
  graceMs: number;
}

/** The backup every restore leg restores: the CLI's (leg C of the last round, or one extra untimed run). */
export interface RestoreSource {
  /** BACKUP_DIR for the CLI: `<dir>/<target>/<backupId>/`. */
  backupDir: string;
  target: string;
  backupId: string;
  /** The zstd-compressed custom-format database artifact. */
  artifact: string;
  artifactBytes: number;
  /** Size of the archive once decompressed. */
  rawBytes: number;
  /** Where it came from, for the page ("leg C, round 3"). */
  origin: string;
}

export interface LegContext {
  /** pg_dump etc. matched to the server's major version. */
  binDir: string;
  /** Child environment for libpq tools (PGHOST, PGDATABASE, PGPASSFILE…): no secret ever goes in argv. */
  pgEnv: Record<string, string>;
  databaseUrl: string;
  /** Empty directory for this run's output; everything in it after the run counts as output bytes. */
  outDir: string;
  repoRoot: string;
  /** Extra environment for the CLI (REDIS_URL of a throwaway Redis, BOT_CONFIG: CLI_BENCH_CONFIG). */
  cliEnv: Record<string, string>;
  /** Lets run.ts kill whatever is running on Ctrl-C. */
  track(sub: Tracked, stop?: StopHow): void;
  /** Server version (e.g. 150020): DROP DATABASE … WITH (FORCE) needs 13. */
  serverVersionNum: number;
  /** Scratch space outside outDir (R2's decompressed archive, the CLI's TMPDIR); removed with the run. */
  tempDir: string;
  /** SQL on run.ts's connection to the benchmark server (CREATE/DROP DATABASE, sizes). */
  sql(text: string, values?: unknown[]): Promise<Array<Record<string, unknown>>>;
  /**
   * Registers an undo run.ts runs on Ctrl-C or a crash, after stopping the children and before the server
   * stops (dropping a restore leg's database). Call the returned function once the leg has undone it itself.
   */
  defer(undo: () => Promise<unknown>): () => void;
  /** Set by run.ts after the backup rounds, for the restore legs. */
  restoreSource?: RestoreSource;
}

/** Thrown by a leg that cannot run here (yet): reported as SKIP, not as a failure of what it measures. */
export class LegUnavailable extends Error {}

export interface LegResult {
  ms: number;
  bytes: number;
  /** Peak RSS of the leg's main process, where there is one (the CLI's node). */
  peakRssKb?: number;
  /** CPU seconds the whole machine was busy during the leg (machineCpuSeconds): every process, the server's too. */
  cpuSeconds?: number;
  /** Every process seen during the run with its own peak. */
  processes: ProcPeak[];
  /** Named parts in ms: R2's `decompress`/`pg_restore`, R3's `rto` (the CLI's own `restore (RTO)` line). */
  parts?: Record<string, number>;
}

export interface Leg {
  id: string;
  title: string;
  command: string;
  /** Runs `node bin/pg-backup-bot.js`: run.ts gives it a throwaway Redis and the bench's config file (cliEnv). */
  usesCli?: boolean;
  /** Encrypts to the bench's age key pair (benchKey): run.ts makes it before the rounds and reports the engine. */
  encrypted?: boolean;
  /** A reason to skip, or undefined when the leg can run. */
  unavailable?(ctx: LegContext): string | undefined;
  run(ctx: LegContext): Promise<LegResult>;
}

function tool(ctx: LegContext, file: string, args: string[], options: Options = {}) {
  const sub = execa(file, args, { env: ctx.pgEnv, extendEnv: false, stdin: 'ignore', ...options });
  ctx.track(sub);
  return sub;
}

/**
 * Times `body` through to fsynced output and sums the output bytes; watches RSS meanwhile. With
 * `outputs: false` (restore legs: what they produce is in the server, not in outDir) the clock stops when
 * `body` returns and bytes is 0.
 */
async function measured(ctx: LegContext, descendants: boolean, body: (watcher: RssWatcher) => Promise<number | undefined>, outputs = true): Promise<LegResult> {
  const watcher = new RssWatcher(descendants).start();
  const cpu0 = await machineCpuSeconds();
  const t0 = performance.now();
  let mainPid: number | undefined;
  let files: string[] = [];
  let ms: number;
  let processes: ProcPeak[];
  try {
    mainPid = await body(watcher);
    if (outputs) {
      files = await filesUnder(ctx.outDir);
      await fsyncAll(files);
    }
    ms = performance.now() - t0;
  } finally {
    processes = await watcher.stop();
  }
  const cpu1 = await machineCpuSeconds();
  const peak = watcher.peakOf(mainPid);
  return {
    ms,
    bytes: await totalBytes(files),
    processes,
    ...(peak === undefined ? {} : { peakRssKb: peak }),
    ...(cpu0 !== null && cpu1 !== null ? { cpuSeconds: cpu1 - cpu0 } : {}),
  };
}

/** One `pg_dump -Fc <options> -f FILE`, nothing after it. */
const pgDumpLeg = (id: string, title: string, options: string[]): Leg => ({
  id,
  title,
  command: `pg_dump -Fc ${options.map((o) => `${o} `).join('')}-f FILE`,
  run: (ctx) =>
    measured(ctx, false, async (w) => {
      const dump = tool(ctx, join(ctx.binDir, 'pg_dump'), ['-Fc', ...options, '-f', join(ctx.outDir, 'db.pgdump')]);
      w.watch(dump.pid);
      await dump;
      return undefined;
    }),
});

const bare = pgDumpLeg('A', 'bare pg_dump (floor)', ['-Z0']);

const seed: Leg = {
  id: 'B',
  title: 'seed recipe',
  command: 'pg_dump -Fc -Z9 -f FILE && gzip FILE',
  run: (ctx) =>
    measured(ctx, false, async (w) => {
      const file = join(ctx.outDir, 'db.pgdump');
      const dump = tool(ctx, join(ctx.binDir, 'pg_dump'), ['-Fc', '-Z9', '-f', file]);
      w.watch(dump.pid);
      await dump;
      const gzip = tool(ctx, 'gzip', [file]);
      w.watch(gzip.pid);
      await gzip;
      return undefined;
    }),
};

/** `pg_dump -Fc -Z0 | zstd -T0 -<level> > FILE` through execa: no shell, no Node in the data path. */
const zstdPipeLeg = (id: string, title: string, level: number): Leg => ({
  id,
  title,
  command: `pg_dump -Fc -Z0 | zstd -T0 -${level} > FILE${id === "C'" ? ' (execa pipe)' : ''}`,
  run: (ctx) =>
    measured(ctx, false, async (w) => {
      // buffer:false on the source: execa would otherwise also keep every byte of the dump in memory.
      // Literal options (not tool()) so execa's types keep both ends pipeable.
      const env = ctx.pgEnv;
      const dump = execa(join(ctx.binDir, 'pg_dump'), ['-Fc', '-Z0'], { env, extendEnv: false, stdin: 'ignore', buffer: { stdout: false } });
      const zstd = execa('zstd', ['-T0', `-${level}`, '-q', '-o', join(ctx.outDir, 'db.pgdump.zst')], { env, extendEnv: false });
      ctx.track(dump);
      ctx.track(zstd);
      w.watch(dump.pid);
      w.watch(zstd.pid);
      await dump.pipe(zstd);
      return undefined;
    }),
});

const rawPipeline = zstdPipeLeg("C'", 'raw pipeline (reference)', 1);

/**
 * Leg L (issue 17): the floor of a compressed backup at the project's level. What C, E and W add over it is the
 * bot's own work (counts, fingerprints, hashing, encryption, read-back, manifest).
 */
const compressedFloor = zstdPipeLeg('L', 'compressed floor', 2);

/** Leg D (issue 17): what a user would run instead of the bot, `pg_dump -Fc` with its default compression. */
const pgDumpDefault = pgDumpLeg('D', 'pg_dump -Fc, default compression', []);

/** Bytes every age v1 file starts with (https://age-encryption.org/v1): the header's first line. */
export const AGE_HEADER = 'age-encryption.org/v1\n';
const ZSTD_MAGIC = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);

/** Where a CLI leg stores its backup: BACKUP_DIR, or a local S3 server as the primary storage (S3_MODE=primary). */
type CliStorage = 'local' | 's3';

/** The stored backup, as a CLI leg found it: every file or object, and a way to read the first bytes of one. */
interface Stored {
  files: Array<{ name: string; bytes: number }>;
  head(name: string, n: number): Promise<Buffer>;
  manifest(): Promise<string>;
}

/** The throwaway age key pair of the encrypted legs, made once per run in tempDir (0600), dropped with it. */
export interface BenchKey {
  recipient: string;
  identityFile: string;
  /** BOT_CONFIG of the encrypted legs (CLI_BENCH_CONFIG_ENCRYPTED). */
  configFile: string;
  /** How the pair was made, for the page: `age-keygen` or the age-encryption package. */
  madeBy: string;
}

const keys = new Map<string, Promise<BenchKey>>();

export function benchKey(ctx: Pick<LegContext, 'tempDir'>): Promise<BenchKey> {
  let key = keys.get(ctx.tempDir);
  if (!key) {
    key = makeKey(ctx.tempDir);
    keys.set(ctx.tempDir, key);
    key.catch(() => keys.delete(ctx.tempDir));
  }
  return key;
}

async function makeKey(dir: string): Promise<BenchKey> {
  const identityFile = join(dir, 'bench-age-identity.txt');
  const configFile = join(dir, 'cli-bench-encrypted.yml');
  let recipient: string;
  let madeBy: string;
  // The standard tool when it is installed; the library the CLI itself decrypts with otherwise. Same key format.
  const keygen = await execa('age-keygen', ['-o', identityFile], { reject: false, stdin: 'ignore' }).catch(() => undefined);
  if (keygen && keygen.exitCode === 0) {
    recipient = (await execa('age-keygen', ['-y', identityFile], { stdin: 'ignore' })).stdout.trim();
    madeBy = 'age-keygen';
  } else {
    const { generateIdentity, identityToRecipient } = await import('age-encryption');
    const identity = await generateIdentity();
    recipient = await identityToRecipient(identity);
    await writeFile(identityFile, `# made by bench/legs.ts\n# public key: ${recipient}\n${identity}\n`, { mode: 0o600 });
    madeBy = 'the age-encryption package (age-keygen is not installed)';
  }
  if (!/^age1[0-9a-z]{58}$/.test(recipient)) throw new Error(`the bench's age key pair has no usable public key (${madeBy})`);
  await writeFile(configFile, CLI_BENCH_CONFIG_ENCRYPTED);
  return { recipient, identityFile, configFile, madeBy };
}

/** The CLI's environment less what would change what a leg measures: storage, encryption, AWS settings. */
function cliBaseEnv(ctx: LegContext, backupDir: string): Record<string, string | undefined> {
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(S3_|AWS_|BACKUP_ENCRYPTION_)/.test(k)));
  return { ...inherited, ...ctx.cliEnv, DATABASE_URL: ctx.databaseUrl, BACKUP_DIR: backupDir, LOG_LEVEL: 'warn' };
}

/**
 * Checks what a CLI leg stored, so no leg can pass by doing something else than it says: the manifest's
 * artifacts are all there with the manifest's sizes, and encrypted ones (manifest says age, to the bench's
 * key) start with the age header, unencrypted ones do not (and a zstd one starts with zstd's magic number).
 */
async function checkStored(stored: Stored, encryptedTo: string | undefined): Promise<void> {
  const m = JSON.parse(await stored.manifest()) as {
    artifacts: Array<{ file: string; compression: string; bytes: number; encryption: { scheme: string; recipients: string[] } | null }>;
  };
  if (!Array.isArray(m.artifacts) || m.artifacts.length === 0) throw new Error('the manifest lists no artifacts');
  for (const a of m.artifacts) {
    const file = stored.files.find((f) => f.name === a.file || f.name.endsWith(`/${a.file}`));
    if (!file) throw new Error(`artifact ${a.file} is in the manifest but was not stored`);
    if (file.bytes !== a.bytes) throw new Error(`artifact ${a.file}: ${file.bytes} bytes stored, the manifest says ${a.bytes}`);
    const head = await stored.head(file.name, AGE_HEADER.length);
    const isAge = head.toString('latin1') === AGE_HEADER;
    if (encryptedTo !== undefined) {
      if (!isAge)
        throw new Error(
          `artifact ${a.file} is not an age file (it starts with ${JSON.stringify(head.toString('latin1').slice(0, 12))}): the leg did not encrypt`,
        );
      if (a.encryption?.scheme !== 'age' || !a.encryption.recipients.includes(encryptedTo)) {
        throw new Error(`artifact ${a.file}: the manifest does not say it is encrypted to the bench's key`);
      }
    } else {
      if (isAge || a.encryption !== null) throw new Error(`artifact ${a.file} is encrypted, but this leg backs up unencrypted`);
      if (a.compression === 'zstd' && !head.subarray(0, 4).equals(ZSTD_MAGIC)) throw new Error(`artifact ${a.file} is not zstd, though the manifest says so`);
    }
  }
}

async function localStored(dir: string): Promise<Stored> {
  const files = await filesUnder(dir);
  const sizes = await Promise.all(files.map(async (f) => ({ name: f, bytes: (await stat(f)).size })));
  const manifests = files.filter((f) => f.endsWith('/manifest.json'));
  return {
    files: sizes,
    async head(name, n) {
      const fh = await open(name, 'r');
      try {
        const buf = Buffer.alloc(n);
        const { bytesRead } = await fh.read(buf, 0, n, 0);
        return buf.subarray(0, bytesRead);
      } finally {
        await fh.close();
      }
    },
    async manifest() {
      // A backup directory without manifest.json is unfinished by contract: not a result to time.
      if (manifests.length !== 1) throw new Error(`exit 0 but ${manifests.length} manifest.json under BACKUP_DIR (${files.length} files)`);
      return readFile(manifests[0] as string, 'utf8');
    },
  };
}

async function s3Stored(s3: BenchS3): Promise<Stored> {
  const objects = await s3.objects();
  const manifests = objects.filter((o) => o.key.endsWith('/manifest.json'));
  return {
    files: objects.map((o) => ({ name: o.key, bytes: o.bytes })),
    head: (name, n) => s3.get(name, n),
    async manifest() {
      if (manifests.length !== 1) throw new Error(`exit 0 but ${manifests.length} manifest.json in the bucket (${objects.length} objects)`);
      return (await s3.get((manifests[0] as { key: string }).key)).toString('utf8');
    },
  };
}

const cliMissing = (ctx: LegContext) => (existsSync(join(ctx.repoRoot, 'src', 'main.ts')) ? undefined : 'CLI not available yet (src/main.ts does not exist)');

/**
 * `node bin/pg-backup-bot.js backup` to local storage (BACKUP_DIR = outDir) or to a local S3 server as the
 * primary storage, unencrypted (`encryption: none`) or encrypted to the bench's throwaway age key. Output =
 * every file under BACKUP_DIR plus, for S3, every object in the bucket; the S3 server's own files are fsynced
 * inside the time like a local backup's, so "stored" means on disk for both. The S3 server is started before
 * the clock starts and stopped after it stops.
 */
function cliBackupLeg(o: { id: string; title: string; command: string; storage: CliStorage; encrypted: boolean }): Leg {
  return {
    id: o.id,
    title: o.title,
    command: o.command,
    usesCli: true,
    encrypted: o.encrypted,
    unavailable: cliMissing,
    run: async (ctx) => {
      const key = o.encrypted ? await benchKey(ctx) : undefined;
      const backupDir = o.storage === 's3' ? join(ctx.outDir, 'backup-dir') : ctx.outDir;
      const s3 = o.storage === 's3' ? await startBenchS3(join(ctx.outDir, 's3rver')) : undefined;
      const undo = s3 ? ctx.defer(() => s3.close()) : undefined;
      try {
        if (s3) await mkdir(backupDir, { recursive: true });
        const result = await measured(ctx, true, async (w) => {
          const env: Record<string, string | undefined> = {
            ...cliBaseEnv(ctx, backupDir),
            ...(key ? { BOT_CONFIG: key.configFile, BACKUP_ENCRYPTION_RECIPIENT: key.recipient } : {}),
            ...(s3
              ? {
                  S3_BUCKET: s3.bucket,
                  S3_PREFIX: 'bench',
                  S3_REGION: 'us-east-1',
                  S3_ENDPOINT: s3.endpoint,
                  S3_FORCE_PATH_STYLE: 'true',
                  S3_MODE: 'primary',
                  AWS_ACCESS_KEY_ID: BENCH_S3_CREDENTIALS.accessKeyId,
                  AWS_SECRET_ACCESS_KEY: BENCH_S3_CREDENTIALS.secretAccessKey,
                  AWS_EC2_METADATA_DISABLED: 'true',
                }
              : {}),
          };
          const sub = execa(process.execPath, [join(ctx.repoRoot, 'bin', 'pg-backup-bot.js'), 'backup'], {
            cwd: ctx.repoRoot,
            env,
            extendEnv: false,
            stdin: 'ignore',
            reject: false,
          });
          ctx.track(sub);
          w.watch(sub.pid);
          const res = await sub;
          if (res.exitCode !== 0 || res.signal) {
            const said = `${res.stderr}\n${res.stdout}`.trim().slice(-600);
            // While the lead is still writing the CLI, a missing module or verb means "not there yet", not "slow".
            const missing = /Cannot find module[^\n]*|Unknown command "backup"/.exec(res.stderr)?.[0];
            if (missing) throw new LegUnavailable(`CLI not available yet (${missing.replaceAll(ctx.repoRoot, '')})`);
            throw new Error(`exit ${res.exitCode ?? res.signal}: ${said || '(no output)'}`);
          }
          return sub.pid;
        });
        // Outside the time: what was stored is what the leg says it is, and its size is every file and object.
        const local = await localStored(backupDir);
        if (!s3) {
          await checkStored(local, key?.recipient);
          return result;
        }
        const remote = await s3Stored(s3);
        await checkStored(remote, key?.recipient);
        const bytes = [...remote.files, ...local.files].reduce((sum, f) => sum + f.bytes, 0);
        return { ...result, bytes };
      } finally {
        await s3?.close();
        undo?.();
      }
    },
  };
}

/** A Slack Web API stand-in for leg W's worker: every method answers ok (the worker posts and updates one message). */
async function quietSlack(): Promise<{ url: string; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ ok: true, channel: 'C0BENCH', ts: `${Date.now() / 1000}` }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/api/`, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

/**
 * Leg W: the same backup as C, taken the way `/backup now` and the schedules take it — a job on the BullMQ
 * queue, run by a worker process (`pg-backup-bot worker`) that is already up, as it is in production. The
 * worker starts before the clock (after the page cache was dropped, so its code is in memory as a running
 * worker's is) and has no start-up to pay; the time runs from the enqueue to the job's completion plus the
 * fsync of what it wrote. Peak RSS is the worker's.
 */
const worker: Leg = {
  id: 'W',
  title: "this project's worker (what /backup now runs)",
  command: 'job on the backup queue → node bin/pg-backup-bot.js worker (already running)',
  usesCli: true,
  unavailable: cliMissing,
  run: async (ctx) => {
    const slack = await quietSlack();
    const connection = new Redis(ctx.cliEnv.REDIS_URL ?? '', { maxRetriesPerRequest: null });
    const prefix = '{pgbb}';
    const queue = new Queue('backup', { connection, prefix });
    const health = new Queue('health', { connection, prefix });
    const eventsConnection = connection.duplicate();
    const events = new QueueEvents('backup', { connection: eventsConnection, prefix });
    const sub = execa(process.execPath, [join(ctx.repoRoot, 'bin', 'pg-backup-bot.js'), 'worker'], {
      cwd: ctx.repoRoot,
      // FIRST_BACKUP_AT_START=false: a worker starting with no backup of its target takes one at once (issue 11,
      // item 4), which would land in the leg's output beside the timed one.
      env: {
        ...cliBaseEnv(ctx, ctx.outDir),
        SLACK_BOT_TOKEN: 'xoxb-bench',
        SLACK_API_URL: slack.url,
        TARGET_NAME: 'pgbb_bench',
        FIRST_BACKUP_AT_START: 'false',
      },
      extendEnv: false,
      stdin: 'ignore',
      reject: false,
    });
    ctx.track(sub);
    try {
      await events.waitUntilReady();
      // Up: its workers are registered, and the health check it runs at start-up has finished.
      const end = Date.now() + 60_000;
      for (;;) {
        if (sub.exitCode !== null) throw new Error(`the worker exited: ${String((await sub).stderr).slice(-600)}`);
        if (Date.now() > end) throw new Error('the worker did not come up within 60 s');
        const idle = Object.values(await health.getJobCounts('active', 'waiting')).every((n) => n === 0);
        if ((await queue.getWorkersCount()) > 0 && idle) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      const result = await measured(ctx, true, async (w) => {
        w.watch(sub.pid);
        const job = await queue.add('backup', { target: 'pgbb_bench', kind: 'manual', label: null, requestedBy: { source: 'cli', userName: 'bench' } });
        const value = (await job.waitUntilFinished(events, 30 * 60_000)) as { backupId?: string } | undefined;
        if (!value?.backupId) throw new Error('the job finished without a backup id');
        return sub.pid;
      });
      await checkStored(await localStored(ctx.outDir), undefined);
      return result;
    } finally {
      sub.kill('SIGTERM');
      await sub;
      await Promise.allSettled([events.close(), queue.close(), health.close()]);
      // Connections handed to BullMQ are ours to close.
      connection.disconnect();
      eventsConnection.disconnect();
      await slack.close();
    }
  },
};

const cli = cliBackupLeg({ id: 'C', title: "this project's CLI", command: 'node bin/pg-backup-bot.js backup', storage: 'local', encrypted: false });

/** Order matters only for display; rounds rotate it so no leg always runs first. */
export const LEGS: Leg[] = [bare, seed, cli, worker, rawPipeline, compressedFloor, pgDumpDefault];

/**
 * The encryption legs (issue 6), timed in the same alternating rounds as the legs above, against C (the
 * unencrypted local backup): E is C encrypted, ES is E to a local S3 server, CS is C to that S3 server, so that
 * ES / CS is the cost of encryption on S3 and CS / C the cost of S3 itself.
 */
export const ENCRYPTION_LEGS: Leg[] = [
  cliBackupLeg({
    id: 'E',
    title: 'CLI, age-encrypted, local',
    command: 'node bin/pg-backup-bot.js backup (BACKUP_ENCRYPTION_RECIPIENT)',
    storage: 'local',
    encrypted: true,
  }),
  cliBackupLeg({ id: 'CS', title: 'CLI, unencrypted, S3', command: 'node bin/pg-backup-bot.js backup (S3_MODE=primary)', storage: 's3', encrypted: false }),
  cliBackupLeg({
    id: 'ES',
    title: 'CLI, age-encrypted, S3',
    command: 'node bin/pg-backup-bot.js backup (BACKUP_ENCRYPTION_RECIPIENT, S3_MODE=primary)',
    storage: 's3',
    encrypted: true,
  }),
];

// ---------------------------------------------------------------------------------------------------------
// Restore legs: the same CLI backup restored three ways, each into a database of its own.

/** The flags the CLI's restore test uses (src/postgres/restore/restore-test-phases.ts, restore), so every leg does the same work. */
const RESTORE_FLAGS = ['--no-owner', '--no-acl', '--exit-on-error'];
const SCRATCH_PREFIX = 'pgbb_rt_'; // the CLI's scratch databases (src/postgres/restore/scratch.ts)

const quoted = (name: string) => `"${name.replace(/"/g, '""')}"`;

function sourceOf(ctx: LegContext): RestoreSource {
  if (!ctx.restoreSource) throw new LegUnavailable('no CLI backup to restore (leg C did not produce one)');
  return ctx.restoreSource;
}

async function dropDatabase(ctx: LegContext, name: string, force: boolean): Promise<void> {
  const withForce = force && ctx.serverVersionNum >= 130000 ? ' with (force)' : '';
  // Without FORCE a backend that is still going away (a killed pg_restore's) makes it fail for a moment.
  for (let attempt = 1; ; attempt++) {
    try {
      await ctx.sql(`drop database if exists ${quoted(name)}${withForce}`);
      return;
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code !== '55006' || attempt >= 20) throw err;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

/**
 * Runs `body` against a database made for it and dropped after it, both outside the timing (body times
 * itself); `bytes` becomes the restored database's size. A name already taken is an error, never dropped:
 * it is not ours (or a killed run's: drop it by hand).
 */
async function intoFreshDatabase(ctx: LegContext, leg: string, body: (db: string, env: Record<string, string>) => Promise<LegResult>): Promise<LegResult> {
  const db = `pgbb_bench_restore_${leg.toLowerCase()}_${process.pid}`;
  try {
    await ctx.sql(`create database ${quoted(db)} template template0`);
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === '42P04') throw new Error(`database ${db} already exists (left by an interrupted run?): drop it by hand`);
    if (code === '42501') throw new LegUnavailable(`the role may not create databases (restore legs need CREATEDB)`);
    throw err;
  }
  const undo = ctx.defer(() => dropDatabase(ctx, db, true));
  try {
    const result = await body(db, { ...ctx.pgEnv, PGDATABASE: db });
    const [row] = await ctx.sql('select pg_database_size($1)::text size', [db]);
    return { ...result, bytes: Number(row?.size ?? 0) };
  } finally {
    // Should this drop fail, the undo stays registered and run.ts tries again when it cleans up.
    await dropDatabase(ctx, db, true);
    undo();
  }
}

const restorePipe: Leg = {
  id: 'R1',
  title: 'bare restore from a pipe, one job',
  command: 'zstd -dc FILE | pg_restore --no-owner --no-acl --exit-on-error -d DB',
  run: (ctx) => {
    const src = sourceOf(ctx);
    return intoFreshDatabase(ctx, 'r1', (db, env) =>
      measured(
        ctx,
        true,
        async (w) => {
          // Literal options (not tool()) so execa's types keep both ends pipeable; buffer:false on the source.
          const zstd = execa('zstd', ['-dc', '-q', src.artifact], { env, extendEnv: false, stdin: 'ignore', buffer: { stdout: false } });
          const restore = execa(join(ctx.binDir, 'pg_restore'), [...RESTORE_FLAGS, `--dbname=${db}`], { env, extendEnv: false });
          ctx.track(zstd);
          ctx.track(restore);
          w.watch(zstd.pid);
          w.watch(restore.pid);
          await zstd.pipe(restore);
          return undefined;
        },
        false,
      ),
    );
  },
};

const restoreFile: Leg = {
  id: 'R2',
  title: 'bare decompress to a file, then pg_restore -j 2',
  command: 'zstd -d FILE -o TMP && pg_restore -j 2 --no-owner --no-acl --exit-on-error -d DB TMP',
  run: async (ctx) => {
    const src = sourceOf(ctx);
    const dir = await mkdtemp(join(ctx.tempDir, 'r2-'));
    try {
      return await intoFreshDatabase(ctx, 'r2', async (db, env) => {
        const file = join(dir, 'database.pgdump');
        let decompressMs = 0;
        const result = await measured(
          ctx,
          true,
          async (w) => {
            const t0 = performance.now();
            const zstd = tool(ctx, 'zstd', ['-d', '-q', '-f', src.artifact, '-o', file], { env });
            w.watch(zstd.pid);
            await zstd;
            decompressMs = performance.now() - t0;
            const restore = tool(ctx, join(ctx.binDir, 'pg_restore'), ['-j', '2', ...RESTORE_FLAGS, `--dbname=${db}`, file], { env });
            w.watch(restore.pid);
            await restore;
            return undefined;
          },
          false,
        );
        return { ...result, parts: { decompress: decompressMs, pg_restore: result.ms - decompressMs } };
      });
    } finally {
      await rm(dir, { recursive: true, force: true }); // outside the timing, like the database's drop
    }
  },
};

/** `1.2 s`, `850 ms`, `3 min 5 s`, `1 h 2 min` (src/notifications/format.ts formatDuration) → ms. */
export function parseDuration(text: string): number | undefined {
  const t = text.trim();
  let m = /^(\d+) ms$/.exec(t);
  if (m) return Number(m[1]);
  m = /^(\d+(?:\.\d+)?) s$/.exec(t);
  if (m) return Number(m[1]) * 1000;
  m = /^(\d+) min (\d+) s$/.exec(t);
  if (m) return (Number(m[1]) * 60 + Number(m[2])) * 1000;
  m = /^(\d+) h (\d+) min$/.exec(t);
  if (m) return (Number(m[1]) * 60 + Number(m[2])) * 60_000;
  return undefined;
}

async function scratchDatabases(ctx: LegContext): Promise<Set<string>> {
  const rows = await ctx.sql('select datname from pg_database where starts_with(datname, $1)', [SCRATCH_PREFIX]);
  return new Set(rows.map((r) => String(r.datname)));
}

/** The restore-test records the CLI keeps beside the backups: `<dir>/<target>/_records/restore-test/*.json`. */
async function recordFiles(src: RestoreSource): Promise<Set<string>> {
  const dir = join(src.backupDir, src.target, '_records', 'restore-test');
  const names = await readdir(dir).catch(() => [] as string[]);
  return new Set(names.filter((n) => n.endsWith('.json')).map((n) => join(dir, n)));
}

/** BOT_CONFIG of a restore-test leg: the CLI legs' config with `restoreTest.verify` set to the leg's level. */
async function verifyConfig(ctx: LegContext, verify: 'counts' | 'content' | 'full'): Promise<string> {
  const file = join(ctx.tempDir, `cli-bench-verify-${verify}.yml`);
  await writeFile(file, `${CLI_BENCH_CONFIG}  verify: ${verify}\n`);
  return file;
}

/**
 * The restore test at one of its levels (issue 14): R3 `counts` (what it was before: rows and objects counted),
 * R3c `content` (the default: the copy compared with its archive entry by entry, and pg_amcheck), R3f `full`
 * (also `--heapallindexed`). Same backup, same -j 2, same server: the difference is the checks.
 */
const restoreTestLeg = (id: string, verify: 'counts' | 'content' | 'full'): Leg => ({
  id,
  title: `this project's restore test, verify: ${verify}`,
  command: 'node bin/pg-backup-bot.js restore-test BACKUP_ID',
  usesCli: true,
  unavailable: cliMissing,
  run: async (ctx) => {
    const src = sourceOf(ctx);
    // The CLI creates and drops its scratch database itself (inside the timing: that is part of the test).
    // Should it be killed before its drop, the new pgbb_rt_ database is dropped here instead.
    const before = await scratchDatabases(ctx);
    const recordsBefore = await recordFiles(src);
    const leftovers = async () => [...(await scratchDatabases(ctx))].filter((n) => !before.has(n));
    const undo = ctx.defer(async () => {
      for (const name of await leftovers()) await dropDatabase(ctx, name, false);
    });
    const tmp = await mkdtemp(join(ctx.tempDir, 'r3-'));
    let stdout = '';
    try {
      const result = await measured(
        ctx,
        true,
        async (w) => {
          const env: Record<string, string | undefined> = {
            ...process.env,
            ...ctx.cliEnv,
            DATABASE_URL: ctx.databaseUrl,
            BACKUP_DIR: src.backupDir,
            LOG_LEVEL: 'warn',
            // Pinned so R3 does what R2 does: -j 2 and no smoke queries (BOT_CONFIG in cliEnv), the same
            // pg_restore, the decompressed archive in the same file system as R2's, scratch databases on the
            // same server.
            PG_BIN_DIR: ctx.binDir,
            TMPDIR: tmp,
            RESTORE_TEST_DATABASE_URL: undefined,
            BOT_CONFIG: await verifyConfig(ctx, verify),
          };
          const sub = execa(process.execPath, [join(ctx.repoRoot, 'bin', 'pg-backup-bot.js'), 'restore-test', src.backupId], {
            cwd: ctx.repoRoot,
            env,
            extendEnv: false,
            stdin: 'ignore',
            reject: false,
          });
          ctx.track(sub, { signal: 'SIGTERM', graceMs: 20_000 });
          w.watch(sub.pid);
          const res = await sub;
          stdout = res.stdout;
          if (res.exitCode !== 0 || res.signal || !/ PASSED$/m.test(res.stdout)) {
            const said = `${res.stderr}\n${res.stdout}`.trim().slice(-800);
            const missing = /Cannot find module[^\n]*|Unknown command "restore-test"/.exec(res.stderr)?.[0];
            if (missing) throw new LegUnavailable(`CLI restore test not available (${missing.replaceAll(ctx.repoRoot, '')})`);
            throw new Error(`exit ${res.exitCode ?? res.signal}: ${said || '(no output)'}`);
          }
          return sub.pid;
        },
        false,
      );
      const left = await leftovers();
      if (left.length > 0) throw new Error(`the CLI passed but left its scratch database(s) ${left.join(', ')} behind`);
      const rtoText = /^\s*restore \(RTO\)\s+(.+)$/m.exec(stdout)?.[1];
      const rto = rtoText === undefined ? undefined : parseDuration(rtoText);
      if (rto === undefined) throw new Error(`no parsable "restore (RTO)" line in the CLI's output:\n${stdout}`);
      // The record it kept: the exact figures (stdout rounds to 0.1 s), the restored size and how it restored.
      const fresh = [...(await recordFiles(src))].filter((f) => !recordsBefore.has(f));
      const record = fresh.length === 1 ? (JSON.parse(await readFile(fresh[0] as string, 'utf8')) as Partial<CliRecord>) : {};
      const method = record.restoreMethod;
      if (method && (method.input !== 'file' || method.jobs !== 2)) {
        throw new Error(`the CLI restored with input=${method.input}, jobs=${method.jobs}, not from a file with -j 2: not comparable with R2`);
      }
      return {
        ...result,
        bytes: record.restoredBytes ?? 0,
        parts: {
          rto,
          overhead: result.ms - rto,
          ...(record.restoreMs === undefined ? {} : { rtoRecord: record.restoreMs }),
          ...(record.verifyMs === undefined ? {} : { verifyRecord: record.verifyMs }),
          ...(record.durationMs === undefined ? {} : { testRecord: record.durationMs }),
        },
      };
    } finally {
      // Anything the CLI left behind (it was killed, or failed before its drop) goes now, outside the timing.
      for (const name of await leftovers().catch(() => [])) await dropDatabase(ctx, name, false).catch(() => undefined);
      undo();
      await rm(tmp, { recursive: true, force: true });
    }
  },
});

/** The fields of the CLI's restore-test record the bench reads (src/storage/restore-record.ts). */
interface CliRecord {
  restoreMs: number;
  verifyMs: number;
  durationMs: number;
  restoredBytes: number | null;
  restoreMethod: { input: string; jobs: number } | null;
}

/**
 * The config file every CLI leg gets (BOT_CONFIG; run.ts writes it), so no pg-backup-bot.yml lying in the
 * checkout changes what is measured. `encryption: none`: the backup legs compare unencrypted archives (the
 * CLI refuses an unencrypted production backup without it); encrypting is a leg of its own. R3 restores with
 * `-j 2` and runs no smoke queries, like R2.
 */
export const CLI_BENCH_CONFIG = `# written by bench/run.ts for the CLI legs
encryption: none
restoreTest:
  jobs: 2
  smokeQueries: []
`;

/** The encrypted legs' config file: C's, but `encryption: age` (which makes BACKUP_ENCRYPTION_RECIPIENT required). */
export const CLI_BENCH_CONFIG_ENCRYPTED = `# written by bench/legs.ts for the encrypted CLI legs
encryption: age
restoreTest:
  jobs: 2
  smokeQueries: []
`;

export const RESTORE_LEGS: Leg[] = [restorePipe, restoreFile, restoreTestLeg('R3', 'counts'), restoreTestLeg('R3c', 'content'), restoreTestLeg('R3f', 'full')];
