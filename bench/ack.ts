import { randomBytes } from 'node:crypto';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { setPriority } from 'node:os';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { execa } from 'execa';
import type pg from 'pg';
import { generateKeyPair } from '../src/crypto/age.ts';
import { freePort, startEphemeralPostgres, startEphemeralRedis } from '../src/dev/ephemeral.ts';
import { client as pgClient } from './dataset.ts';
import type { StopHow, Tracked } from './legs.ts';
import {
  BOT_BURSTS,
  FLOOR_BURSTS,
  burstRequests,
  cpuMs,
  fire,
  childNamed,
  hasDescendant,
  percentile,
  redisCalls,
  slackStandIn,
  stallWatch,
  until,
  type Burst,
  type Stalls,
} from './ack-support.ts';

/**
 * Leg K (issue 11, item 5): acknowledgements under a burst. The bot runs as `npm start` runs it (`node
 * bin/pg-backup-bot.js all`, configured only through the environment contract) on a throwaway PostgreSQL and
 * Redis, with a local Slack Web API stand-in that answers ok. Every round:
 *   now    50 concurrent signed `/backup now` for one target while nothing runs: the first starts the backup;
 *          checked: exactly one new job, all 50 answers name it;
 *   list   50 concurrent `/backup list` while that backup's pg_dump runs (≥ 20 finished backups stored);
 *   now+   50 concurrent `/backup now` while it runs: no new job, all 50 answers name the running one;
 * (list and now+ swap places every other round), then the backup is waited for. Latency is the client's: from
 * the request being sent to the whole HTTP response (the ack, which carries the answer) being read.
 */

export interface AckContext {
  repoRoot: string;
  tempDir: string;
  rounds: number;
  log(msg: string): void;
  track(sub: Tracked, how?: StopHow): void;
  /** Registers an undo for the run's clean-up (also on Ctrl-C). */
  cleanup(undo: () => Promise<unknown>): void;
}

export const ACK_LEG = 'K';
export const BURST = Number(process.env.BENCH_ACK_BURST ?? 50);
/** Finished backups stored before the rounds, as a team that has run the bot for a while has them. */
export const SEEDED_BACKUPS = Number(process.env.BENCH_ACK_STORED ?? 20);
/** Size of the filler table: big enough that the dump lasts through both bursts that run beside it. */
export const FILLER_MB = Number(process.env.BENCH_ACK_MB ?? 400);

const TARGET = 'pgbb_ack';
const ENGINEERS = Array.from({ length: BURST }, (_, i) => `U0ENG${String(i + 1).padStart(3, '0')}`);
const ONCALL_GROUP = 'S0ONCALL';
const ADMIN = 'U0ADMIN01';
const PREFIX = '{pgbb}'; // the bot's default QUEUE_PREFIX
const WARM_UP = 5;
const SETTLE_MS = 1000;
const SCRAPE_SETTLE_MS = 250;
export const SPLIT = process.env.BENCH_ACK_SPLIT === '1';
/**
 * BENCH_ACK_DB_NICE=N: the PostgreSQL server's postmaster at niceness N, so the backends it forks for the bot's dumps
 * (and for nothing else of the bot's) yield the CPU to the bot: a stand-in for production, where the database runs
 * on another host. Not a standard run: it shows what the co-located server costs the bursts, not the goal's figure.
 */
export const DB_NICE = process.env.BENCH_ACK_DB_NICE ? Number(process.env.BENCH_ACK_DB_NICE) : undefined;

/**
 * A team's config: roles through a Slack user group (resolved through the Web API, as `roles.operator: [S…]`
 * does in production), backups encrypted with age.
 */
const CONFIG = `# written by bench/ack.ts for leg K
encryption: age
roles:
  viewer: []
  operator: [${ONCALL_GROUP}]
  admin: [${ADMIN}]
`;

export interface BurstStats {
  kind: Burst;
  samplesMs: number[];
  p50: number;
  p99: number;
  max: number;
  /** Per round: the round's p99, in ms. */
  roundP99: number[];
  /** Per round: the fastest answer, and the longest stall of the client's and the bot's event loops during it. */
  stalls: Stalls[];
  /** Redis commands the server ran during the bursts (every client: bot, its workers), per request. */
  redisPerRequest: number;
  /** CPU the bot's process used during the bursts, per request, in ms (10 ms clock ticks, summed over rounds). */
  botCpuMsPerRequest: number;
  /** Slack Web API calls during the bursts (role lookups through user groups, the backup's channel message). */
  slackCalls: Record<string, number>;
}

export interface AckResult {
  bursts: BurstStats[];
  rounds: number;
  burst: number;
  /** What was checked, and in how many rounds it held. */
  checks: Array<{ check: string; passed: number; of: number; note?: string }>;
  storedAtStart: number;
  databaseBytes: number;
  /** `PostgreSQL 15.x (…)`: the server's version(), up to its build details. */
  pgVersion: string;
  /** Per round: how long its backup ran (ms), from the `now` burst's end to the job's completion. */
  backupMs: number[];
  /** Per round: whether its pg_dump was still running when the last burst beside it ended. */
  dumpThrough: boolean[];
  auditLines: { expected: number; found: number };
  /** How the bot ran: `all` (what npm start runs) or `bot + worker` (BENCH_ACK_SPLIT=1). */
  mode: 'all' | 'bot + worker';
  botLogLines: number;
  botErrors: string[];
  /** Per round: the bot's CPU (ms per second) over half a second of its dump with no request to answer. */
  quietCpuMsPerSecond: number[];
  /** The bot's peak resident memory (VmHWM, MiB): what every spawn() of a backup tool has to fork. */
  botPeakRssMiB: number;
  /** The worker process's: `all`'s child, or the `worker` of a split run. */
  workerPeakRssMiB: number;
  seedSeconds: number;
}

const jobIdIn = (text: string) => /job `([^`]+)`/.exec(text)?.[1];

/** The target database: the sample schema (what the seeded backups hold); the filler comes later. */
async function targetDatabase(ctx: AckContext): Promise<{ url: string; admin: pg.Client; db: pg.Client; dataDir: string }> {
  // wal_level=minimal: the filler table's create+load transaction skips WAL, so it loads in seconds.
  const server = await startEphemeralPostgres({ settings: { wal_level: 'minimal', max_wal_senders: '0', max_wal_size: '4GB' } });
  ctx.cleanup(() => server.stop());
  const admin = pgClient(server.url);
  await admin.connect();
  ctx.cleanup(() => admin.end());
  await admin.query(`create database ${TARGET}`);
  const url = new URL(server.url);
  url.pathname = `/${TARGET}`;
  const db = pgClient(url.toString());
  await db.connect();
  ctx.cleanup(() => db.end());
  await db.query(await readFile(join(ctx.repoRoot, 'src', 'dev', 'sample-schema.sql'), 'utf8'));
  return { url: url.toString(), admin, db, dataDir: server.dataDir };
}

/** md5 text: zstd and age get real work, as with production data (half of it incompressible hex). */
async function loadFiller(db: pg.Client): Promise<{ bytes: number; version: string }> {
  const rows = Math.round((FILLER_MB * 1e6) / 140);
  await db.query(`begin;
    create table bench_filler (id bigint not null, a text not null, b text not null, at timestamptz not null);
    insert into bench_filler select g, md5(g::text), md5((g * 7)::text) || md5((g * 13)::text), timestamptz '2024-01-01' + g * interval '1 second'
      from generate_series(1, ${rows}) g;
    commit;`);
  await db.query('vacuum (freeze, analyze) bench_filler');
  const row = (await db.query<{ size: string; version: string }>('select pg_database_size(current_database())::text size, version() version')).rows[0];
  return { bytes: Number(row?.size ?? 0), version: row?.version.split(' on ')[0] ?? 'PostgreSQL' };
}

/** `node bin/pg-backup-bot.js <verb>` with `env` only; its log lines are counted and its errors kept. */
function startBot(ctx: AckContext, env: Record<string, string>, verb: 'all' | 'bot' | 'worker') {
  // BENCH_ACK_PROFILE=DIR: a V8 CPU profile of the bot, written to DIR when it stops (to see where its time goes).
  const profile = process.env.BENCH_ACK_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_ACK_PROFILE}`] : [];
  // BENCH_ACK_NODE_FLAGS: V8 flags for the bot's node (to compare garbage-collector settings).
  profile.push(...(process.env.BENCH_ACK_NODE_FLAGS?.split(' ').filter(Boolean) ?? []));
  const child = execa(process.execPath, [...profile, join(ctx.repoRoot, 'bin', 'pg-backup-bot.js'), verb], {
    cwd: ctx.repoRoot,
    // The worker of a split run serves its own /healthz and /metrics: a port of its own (the bot's is env's).
    env: verb === 'worker' ? { ...env, METRICS_PORT: '0' } : env,
    extendEnv: false,
    stdin: 'ignore',
    buffer: false,
    reject: false,
  });
  ctx.track(child, { signal: 'SIGTERM', graceMs: 35_000 });
  const out = { child, lines: 0, tail: '', errors: [] as string[] };
  const onLog = (chunk: Buffer) => {
    const text = chunk.toString();
    out.tail = (out.tail + text).slice(-4000);
    for (const line of text.split('\n').filter(Boolean)) {
      out.lines++;
      if (/"level":(50|60)/.test(line) && out.errors.length < 10) out.errors.push(line.slice(0, 400)); // pino: 50 error, 60 fatal
    }
  };
  child.stdout?.on('data', onLog);
  child.stderr?.on('data', onLog);
  return out;
}

/** A floor server (bench/ack-floor.mjs) on a free port: the same burst, answered by no code of ours. */
async function startFloor(ctx: AckContext, kind: 'http' | 'bolt' | 'receiver', signingSecret: string): Promise<{ url: string; pid: number | undefined }> {
  const port = await freePort();
  const child = execa(process.execPath, [join(ctx.repoRoot, 'bench', 'ack-floor.mjs'), kind, String(port)], {
    cwd: ctx.repoRoot,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', SLACK_SIGNING_SECRET: signingSecret },
    extendEnv: false,
    stdin: 'ignore',
    buffer: false,
    reject: false,
  });
  ctx.track(child, { signal: 'SIGTERM', graceMs: 5000 });
  let out = '';
  child.stderr?.on('data', (c: Buffer) => (out = (out + c.toString()).slice(-2000)));
  await new Promise<void>((resolve, reject) => {
    child.stdout?.on('data', (c: Buffer) => {
      if (c.toString().includes('listening')) resolve();
    });
    void child.then((r) => reject(new Error(`floor server ${kind} exited (${r.exitCode}): ${out}`)));
  });
  return { url: `http://127.0.0.1:${port}${kind === 'http' ? '/' : '/slack/events'}`, pid: child.pid };
}

async function peakRssMiB(pid: number | undefined): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  return Number(/^VmHWM:\s+(\d+) kB/m.exec(status)?.[1] ?? 0) / 1024;
}

/** Finished backups in BACKUP_DIR: directories with a manifest.json (what the bot may list). */
async function finishedBackups(dir: string): Promise<number> {
  const ids = await readdir(join(dir, TARGET)).catch(() => [] as string[]);
  const flags = await Promise.all(
    ids.map((id) =>
      readFile(join(dir, TARGET, id, 'manifest.json')).then(
        () => 1,
        () => 0,
      ),
    ),
  );
  return flags.reduce<number>((a, b) => a + b, 0);
}

/** Latencies and costs per kind of burst, and the correctness checks, over all rounds. */
class Tally {
  readonly samples: Record<Burst, number[][]> = { now: [], list: [], 'now+': [], 'floor-http': [], 'floor-bolt': [], 'floor-receiver': [] };
  readonly redis: Record<Burst, number> = { now: 0, list: 0, 'now+': 0, 'floor-http': 0, 'floor-bolt': 0, 'floor-receiver': 0 };
  /** The CPU of the process that answered: the bot's, or the floor server's. */
  readonly cpu: Record<Burst, number> = { now: 0, list: 0, 'now+': 0, 'floor-http': 0, 'floor-bolt': 0, 'floor-receiver': 0 };
  readonly slack: Record<Burst, Record<string, number>> = { now: {}, list: {}, 'now+': {}, 'floor-http': {}, 'floor-bolt': {}, 'floor-receiver': {} };
  /** Per round: how long the client's and the bot's event loops stalled during the burst (stallWatch). */
  readonly stalls: Record<Burst, Stalls[]> = { now: [], list: [], 'now+': [], 'floor-http': [], 'floor-bolt': [], 'floor-receiver': [] };
  readonly #checks = new Map<string, { passed: number; of: number; note?: string }>();
  commands = 0;

  check(name: string, ok: boolean, note: string): void {
    const c = this.#checks.get(name) ?? { passed: 0, of: 0 };
    c.of++;
    if (ok) c.passed++;
    else c.note ??= note;
    this.#checks.set(name, c);
  }

  checks(): AckResult['checks'] {
    return [...this.#checks].map(([check, c]) => ({ check, passed: c.passed, of: c.of, ...(c.note ? { note: c.note } : {}) }));
  }

  stats(kind: Burst): BurstStats {
    const all = this.samples[kind].flat();
    const n = Math.max(1, all.length);
    return {
      kind,
      samplesMs: all,
      p50: percentile(all, 0.5),
      p99: percentile(all, 0.99),
      max: Math.max(0, ...all),
      roundP99: this.samples[kind].map((s) => percentile(s, 0.99)),
      stalls: this.stalls[kind],
      redisPerRequest: this.redis[kind] / n,
      botCpuMsPerRequest: this.cpu[kind] / n,
      slackCalls: this.slack[kind],
    };
  }
}

export async function runAckLeg(ctx: AckContext): Promise<AckResult> {
  const { log } = ctx;
  const backupDir = join(ctx.tempDir, 'ack', 'backups');
  await mkdir(backupDir, { recursive: true });
  log('Leg K: starting a throwaway PostgreSQL and Redis…');
  const database = await targetDatabase(ctx);
  if (DB_NICE !== undefined) {
    const postmaster = Number((await readFile(join(database.dataDir, 'postmaster.pid'), 'utf8')).split('\n')[0]);
    setPriority(postmaster, DB_NICE);
    log(`  PostgreSQL's postmaster (pid ${postmaster}) at niceness ${DB_NICE}: its new backends inherit it`);
  }
  const redisServer = await startEphemeralRedis();
  ctx.cleanup(() => redisServer.stop());
  const slack = await slackStandIn(ENGINEERS);
  ctx.cleanup(() => slack.close());
  const configFile = join(ctx.tempDir, 'ack', 'bot.yml');
  await writeFile(configFile, CONFIG);
  const signingSecret = randomBytes(24).toString('hex');
  const port = await freePort();
  const metricsPort = await freePort();
  // The environment contract and nothing else of ours (a DATABASE_URL or S3_* of the shell must not leak in);
  // secrets reach the bot through its environment, never argv.
  const env = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? ctx.tempDir,
    SLACK_BOT_TOKEN: `xoxb-bench-${randomBytes(8).toString('hex')}`,
    SLACK_SIGNING_SECRET: signingSecret,
    SLACK_API_URL: slack.url,
    SLACK_CHANNEL: '#incidents',
    PORT: String(port),
    METRICS_PORT: String(metricsPort),
    REDIS_URL: redisServer.url,
    DATABASE_URL: database.url,
    BACKUP_DIR: backupDir,
    BOT_CONFIG: configFile,
    BACKUP_ENCRYPTION_RECIPIENT: (await generateKeyPair()).recipient,
    LOG_LEVEL: 'info', // the default: what a deployed bot logs
  };
  // BENCH_ACK_SPLIT=1: the bot and the workers in two processes (`bot` and `worker`), for comparison with `all`.
  const bot = startBot(ctx, env, SPLIT ? 'bot' : 'all');
  const worker = SPLIT ? startBot(ctx, env, 'worker') : bot;
  const redis = new Redis(redisServer.url, { maxRetriesPerRequest: null });
  const queue = new Queue('backup', { connection: redis, prefix: PREFIX });
  const health = new Queue('health', { connection: redis, prefix: PREFIX });
  const send = (text: string, users: string[]) => fire(`http://127.0.0.1:${port}/slack/events`, burstRequests(signingSecret, text, users));
  /** Waits for a backup job to end; fails the leg when it did not complete. */
  const finished = async (jobId: string) => {
    const state = await until(`backup job ${jobId}`, 10 * 60_000, async () => {
      const s = await queue.getJobState(jobId);
      return s === 'completed' || s === 'failed' ? s : undefined;
    });
    if (state !== 'completed') throw new Error(`backup job ${jobId} failed: ${(await queue.getJob(jobId))?.failedReason ?? '?'}`);
  };
  try {
    await until('the bot to answer /healthz', 60_000, async () => {
      for (const p of new Set([bot, worker])) if (p.child.exitCode !== null) throw new Error(`the bot exited (${p.child.exitCode}):\n${p.tail}`);
      return fetch(`http://127.0.0.1:${metricsPort}/healthz`).then(
        (r) => r.status === 200,
        () => false,
      );
    });
    // Up: its start-up health run is over, so only what the rounds start runs.
    await until('the start-up health run', 60_000, async () => Object.values(await health.getJobCounts('active', 'waiting')).every((n) => n === 0));

    // The finished backups a team has, taken by the bot itself (/backup now, one after the other) while the
    // database holds only the sample schema; the filler that makes the rounds' dumps last comes after.
    log(`Leg K: ${SEEDED_BACKUPS} backups to start from (the bot takes them one after the other)…`);
    const seedStart = performance.now();
    for (let i = 0; i < SEEDED_BACKUPS; i++) {
      const [reply] = await send('now', [ADMIN]);
      const id = reply ? jobIdIn(reply.text) : undefined;
      if (!id) throw new Error(`seed backup ${i + 1}: no job id in ${JSON.stringify(reply)}`);
      await finished(id);
    }
    const seedSeconds = (performance.now() - seedStart) / 1000;
    const storedAtStart = await finishedBackups(backupDir);
    if (storedAtStart !== SEEDED_BACKUPS) throw new Error(`${storedAtStart} finished backups stored, ${SEEDED_BACKUPS} expected`);
    log(`  ${SEEDED_BACKUPS} backups in ${seedSeconds.toFixed(1)} s; loading a ${FILLER_MB} MB filler table…`);
    const filler = await loadFiller(database.db);
    log(`  database ${(filler.bytes / 1e6).toFixed(0)} MB`);
    const floors = {
      'floor-http': await startFloor(ctx, 'http', signingSecret),
      'floor-bolt': await startFloor(ctx, 'bolt', signingSecret),
      'floor-receiver': await startFloor(ctx, 'receiver', signingSecret),
    } as const;
    // Warm-up, untimed: a deployed bot has answered commands before (JIT, connections, the user group's members).
    await send('list', ENGINEERS.slice(0, WARM_UP));
    for (const f of Object.values(floors)) await fire(f.url, burstRequests(signingSecret, 'list', ENGINEERS.slice(0, WARM_UP)));

    const tally = new Tally();
    const backupMs: number[] = [];
    const dumpThrough: boolean[] = [];
    const quietCpu: number[] = [];
    const dumping = () => hasDescendant(worker.child.pid, 'pg_dump');
    const jobIds = async () => new Set((await queue.getJobs(['active', 'waiting', 'delayed', 'prioritized', 'completed', 'failed'])).map((j) => j.id));
    /** One burst, measured; returns the answers' texts and the jobs it created. */
    const burst = async (kind: Burst): Promise<{ texts: string[]; created: string[] }> => {
      const before = await jobIds();
      const slackBefore = new Map(slack.calls);
      // The bot's /metrics is read before and after (its event-loop and GC figures), outside the window its CPU and
      // Redis commands are counted in, and a moment before the burst, so the scrape's own work is over when it comes.
      const stalls = await stallWatch(metricsPort, bot.child.pid, SCRAPE_SETTLE_MS);
      const [calls0, cpu0] = await Promise.all([redisCalls(redis), cpuMs(bot.child.pid)]);
      const answers = await send(kind === 'list' ? 'list' : 'now', ENGINEERS);
      const [calls1, cpu1] = await Promise.all([redisCalls(redis), cpuMs(bot.child.pid)]);
      tally.stalls[kind].push({ ...(await stalls()), fastestMs: Math.min(...answers.map((a) => a.ms)) });
      tally.commands += answers.length;
      tally.redis[kind] += calls1 - calls0 - 1; // less our own INFO
      tally.cpu[kind] += cpu1 - cpu0;
      for (const [m, n] of slack.calls) if (n !== (slackBefore.get(m) ?? 0)) tally.slack[kind][m] = (tally.slack[kind][m] ?? 0) + n - (slackBefore.get(m) ?? 0);
      tally.samples[kind].push(answers.map((a) => a.ms));
      const bad = answers.find((a) => a.status !== 200);
      tally.check(`${kind}: every request answered 200`, !bad, `HTTP ${bad?.status}: ${bad?.text.slice(0, 200)}`);
      const created = [...(await jobIds())].filter((id): id is string => id !== undefined && !before.has(id));
      return { texts: answers.map((a) => a.text), created };
    };

    /** The same burst at a floor server, beside the same dump: its latency and its server's CPU. */
    const floorBurst = async (kind: (typeof FLOOR_BURSTS)[number]) => {
      const floor = floors[kind];
      const cpu0 = await cpuMs(floor.pid);
      const stalls = await stallWatch(null);
      const answers = await fire(floor.url, burstRequests(signingSecret, 'list', ENGINEERS));
      tally.stalls[kind].push({ ...(await stalls()), fastestMs: Math.min(...answers.map((a) => a.ms)) });
      tally.cpu[kind] += (await cpuMs(floor.pid)) - cpu0;
      tally.samples[kind].push(answers.map((a) => a.ms));
      const bad = answers.find((a) => a.status !== 200);
      tally.check(`${kind}: every request answered 200`, !bad, `HTTP ${bad?.status}: ${bad?.text.slice(0, 200)}`);
    };

    for (let round = 0; round < ctx.rounds; round++) {
      const now = await burst('now');
      const jobId = jobIdIn(now.texts[0] ?? '');
      const named = new Set(now.texts.map(jobIdIn));
      const queuedAnswers = now.texts.filter((t) => /\bqueued: job `/.test(t)).length;
      tally.check(
        'now: exactly one new job, and all answers name it',
        now.created.length === 1 && now.created[0] === jobId && named.size === 1 && queuedAnswers === 1,
        `${now.created.length} new job(s), ${queuedAnswers} answer(s) said queued, ${named.size} job id(s) named`,
      );
      if (!jobId) throw new Error(`round ${round + 1}: no job id in the answers: ${now.texts[0]?.slice(0, 200) ?? '(none)'}`);
      const t0 = performance.now();
      await until('pg_dump to start', 120_000, dumping);
      // The backup's start (its other pipeline, for the globals, and the counts beside the dump) is what the `now`
      // burst met; list and now+ meet the dump under way, a second later.
      await new Promise((r) => setTimeout(r, SETTLE_MS));
      // What the bot spends with no request to answer while its backup dumps: the floor under the bursts beside it.
      const quiet0 = await cpuMs(bot.child.pid);
      await new Promise((r) => setTimeout(r, 500));
      quietCpu.push(((await cpuMs(bot.child.pid)) - quiet0) * 2);
      const stored = await finishedBackups(backupDir);
      for (const kind of round % 2 === 0 ? (['list', 'now+'] as const) : (['now+', 'list'] as const)) {
        const { texts, created } = await burst(kind);
        if (kind === 'list') {
          const wrong = texts.find((t) => Number(/\(newest first, (\d+) in all\)/.exec(t)?.[1]) !== stored);
          tally.check('list: every answer lists all finished backups', !wrong, `${stored} expected: ${wrong?.slice(0, 160)}`);
        } else {
          const wrong = texts.find((t) => !/already queued or running: job `/.test(t) || jobIdIn(t) !== jobId);
          tally.check(
            'now+: no new job, all answers name the running one',
            created.length === 0 && !wrong,
            `${created.length} new job(s); ${wrong?.slice(0, 160) ?? ''}`,
          );
        }
      }
      for (const kind of round % 2 === 0 ? FLOOR_BURSTS : ([...FLOOR_BURSTS].reverse() as Array<(typeof FLOOR_BURSTS)[number]>)) await floorBurst(kind);
      const through = await dumping();
      dumpThrough.push(through);
      tally.check('the dump ran through list, now+ and the floors', through, 'the dump had ended before the last burst did: raise BENCH_ACK_MB');
      await finished(jobId);
      backupMs.push(performance.now() - t0);
      const p99 = (kind: Burst) => percentile(tally.samples[kind].at(-1) ?? [], 0.99).toFixed(0);
      const stall = (kind: Burst) => {
        const s = tally.stalls[kind].at(-1);
        return s
          ? `${kind} fastest ${s.fastestMs.toFixed(0)} ms, client stall ${s.clientLagMs.toFixed(0)} ms${s.botLagMs === null ? '' : `, bot stall ${s.botLagMs.toFixed(0)} ms, bot GC ${s.botGcMs?.toFixed(0)} ms (major ${s.botMajorGcMs?.toFixed(0)}), bot on CPU ${s.botOnCpuMs?.toFixed(0)} ms, waiting for one ${s.botRunDelayMs?.toFixed(0)} ms`}`
          : kind;
      };
      log(`  stalls: ${[...BOT_BURSTS, ...FLOOR_BURSTS].map(stall).join('; ')}`);
      log(
        `round ${round + 1} K  p99: now ${p99('now')} ms, list ${p99('list')} ms, now+ ${p99('now+')} ms; floors: node:http ${p99('floor-http')} ms, Bolt ${p99('floor-bolt')} ms, Bolt on our receiver ${p99('floor-receiver')} ms; dump through: ${through ? 'yes' : 'NO'}`,
      );
    }

    // Every command must be in the trail. Appends may land just after their ack: a moment is allowed for them.
    const auditFile = join(backupDir, '_audit', 'audit.jsonl');
    const expected = SEEDED_BACKUPS + WARM_UP + tally.commands;
    const count = async () => (await readFile(auditFile, 'utf8').catch(() => '')).split('\n').filter((l) => l.includes('"kind":"command"')).length;
    const found = await until('the audit trail', 5000, async () => ((await count()) >= expected ? count() : undefined)).catch(count);
    tally.check('audit: one line per command', found === expected, `${found} command lines, ${expected} expected`);

    return {
      bursts: [...BOT_BURSTS, ...FLOOR_BURSTS].map((kind) => tally.stats(kind)),
      rounds: ctx.rounds,
      burst: BURST,
      checks: tally.checks(),
      storedAtStart,
      databaseBytes: filler.bytes,
      pgVersion: filler.version,
      backupMs,
      dumpThrough,
      auditLines: { expected, found },
      mode: SPLIT ? 'bot + worker' : 'all',
      botLogLines: bot.lines + (SPLIT ? worker.lines : 0),
      botErrors: SPLIT ? [...bot.errors, ...worker.errors] : bot.errors,
      botPeakRssMiB: await peakRssMiB(bot.child.pid),
      workerPeakRssMiB: await peakRssMiB(SPLIT ? worker.child.pid : await childNamed(bot.child.pid, 'node')),
      quietCpuMsPerSecond: quietCpu,
      seedSeconds,
    };
  } finally {
    for (const p of new Set([bot, worker])) p.child.kill('SIGTERM');
    await Promise.all([bot.child, worker.child]);
    await Promise.allSettled([queue.close(), health.close()]);
    redis.disconnect();
  }
}
