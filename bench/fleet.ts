import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { Redis } from 'ioredis';
import { loadConfig } from '../src/config.ts';
import { generateKeyPair } from '../src/crypto/age.ts';
import { freePort, startEphemeralPostgres, startEphemeralRedis } from '../src/dev/ephemeral.ts';
import { createQueues } from '../src/jobs/queues.ts';
import { createLogger } from '../src/logger.ts';
import { gapSize, planGap } from '../src/workers/redis-plan.ts';
import { burstRequests, fire, percentile, slackStandIn, until } from './ack-support.ts';
import { client } from './dataset.ts';

/**
 * `npm run bench:fleet` (issue 17, item 3): the bot with 200 targets. 200 targets on one throwaway PostgreSQL (20
 * databases of the sample schema, 10 targets each, as teams with many small services have them), one worker and
 * the bot as `npm start` runs them. Measured:
 *   - the plan at start: from the worker's start to every scheduler and queue limit in Redis (polled every 50 ms);
 *   - the first backup of each of the 200 targets (FIRST_BACKUP_AT_START), one dump per server at a time;
 *   - `/backup status`, `/backup list`, `/backup health`: the ack (which carries the whole answer) over
 *     ROUNDS sequential requests each, p50/p99/max, and the answer's length;
 *   - a health run over all targets, as the worker runs it (a job on the health queue): BullMQ's processedOn → finishedOn;
 *   - the peak RSS (VmHWM) of the bot and the worker.
 * BENCH_FLEET_TARGETS, BENCH_FLEET_DATABASES, BENCH_FLEET_ROUNDS change the shape; BENCH_FLEET_PROFILE=DIR profiles the bot.
 */

const TARGETS = Number(process.env.BENCH_FLEET_TARGETS ?? 200);
const DATABASES = Number(process.env.BENCH_FLEET_DATABASES ?? 20);
const ROUNDS = Number(process.env.BENCH_FLEET_ROUNDS ?? 30);
const SIGNING_SECRET = 'bench-fleet-signing-secret';
const PREFIX = '{pgbb}';
const log = (m: string) => process.stdout.write(`${m}\n`);

async function vmHwmMb(pid: number | undefined): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0) / 1024;
}

/** Slack's response_url: records when each answer arrives (by the URL's last segment) and its length. */
async function responseStandIn(): Promise<{ url: string; got: Map<string, { at: number; chars: number }>; close(): Promise<void> }> {
  const got = new Map<string, { at: number; chars: number }>();
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const text = (JSON.parse(body || '{}') as { text?: string }).text ?? '';
      got.set(decodeURIComponent((req.url ?? '').split('/').pop() ?? ''), { at: performance.now(), chars: text.length });
      res.end('ok');
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/response`, got, close: () => new Promise((r) => server.close(() => r())) };
}

/** The last output of a child, read when something fails. */
function tail(stream: NodeJS.ReadableStream | undefined): () => string {
  let out = '';
  stream?.on('data', (c: Buffer) => {
    out += c.toString();
    if (out.length > 100_000) out = out.slice(-50_000);
  });
  return () => out.slice(-3000);
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'pgbb-bench-fleet-'));
  const [pgServer, redisServer] = await Promise.all([startEphemeralPostgres({ settings: { max_connections: '100' } }), startEphemeralRedis()]);
  const slack = await slackStandIn(['U0ONCALL']);
  const responses = await responseStandIn();
  const children: Array<{ kill(signal: 'SIGTERM'): unknown } & PromiseLike<unknown>> = [];
  try {
    log(`${TARGETS} targets over ${DATABASES} databases…`);
    const schema = await readFile(new URL('../src/dev/sample-schema.sql', import.meta.url), 'utf8');
    const dbUrls: string[] = [];
    for (let d = 0; d < DATABASES; d++) {
      const admin = client(pgServer.url);
      await admin.connect();
      await admin.query(`CREATE DATABASE fleet_${d}`);
      await admin.end();
      const url = pgServer.url.replace(/\/postgres$/, `/fleet_${d}`);
      const c = client(url);
      await c.connect();
      await c.query(schema);
      await c.end();
      dbUrls.push(url);
    }
    const targets = Array.from({ length: TARGETS }, (_, i) => [
      `  - name: svc-${String(i).padStart(3, '0')}`,
      `    url: ${dbUrls[i % DATABASES]}`,
      `    environment: ${i % 4 === 0 ? 'staging' : 'production'}`,
    ]).flat();
    await writeFile(join(dir, 'bot.yml'), ['timezone: UTC', 'encryption: age', 'targets:', ...targets, ''].join('\n'));
    const keys = await generateKeyPair();
    const [port, botMetrics, workerMetrics] = [await freePort(), await freePort(), await freePort()];
    const env: Record<string, string> = {
      SLACK_BOT_TOKEN: 'xoxb-bench-fleet',
      SLACK_SIGNING_SECRET: SIGNING_SECRET,
      SLACK_API_URL: slack.url,
      SLACK_CHANNEL: '#incidents',
      REDIS_URL: redisServer.url,
      QUEUE_PREFIX: PREFIX,
      BOT_CONFIG: join(dir, 'bot.yml'),
      BACKUP_DIR: join(dir, 'backups'),
      BACKUP_ENCRYPTION_RECIPIENT: keys.recipient,
      LOG_LEVEL: 'warn',
    };
    const config = loadConfig(env, 'worker');
    const redis = new Redis(redisServer.url, { maxRetriesPerRequest: null });
    const queues = createQueues(redis, PREFIX);
    const planDeps = { config, queues, log: createLogger({ level: 'silent' }) };

    const t0 = performance.now();
    const worker = execa('node', ['bin/pg-backup-bot.js', 'worker'], {
      env: { ...env, METRICS_PORT: String(workerMetrics) },
      reject: false,
      all: true,
      buffer: false,
    });
    children.push(worker);
    tail(worker.all);
    const planMs = await until('the plan in Redis', 120_000, async () => gapSize(await planGap(planDeps)) === 0 && performance.now() - t0);
    const schedulers = (
      await Promise.all([queues.backup, queues.restoreTest, queues.retention, queues.checklist, queues.health].map((q) => q.getJobSchedulersCount()))
    ).reduce((a, b) => a + b, 0);
    log(`plan at start: ${(planMs / 1000).toFixed(2)} s from the worker's start (${schedulers} job schedulers)`);

    const firstStart = performance.now();
    await until('200 first backups', 30 * 60_000, async () => {
      const [c, f] = await Promise.all([queues.backup.getCompletedCount(), queues.backup.getFailedCount()]);
      return c + f >= TARGETS && { c, f };
    }).then(({ c, f }) => log(`first backups: ${c} succeeded, ${f} failed, in ${((performance.now() - firstStart) / 1000).toFixed(0)} s`));

    // BENCH_FLEET_PROFILE=DIR: a V8 CPU profile of the bot, written to DIR when it stops (where an ack's time goes).
    const profile = process.env.BENCH_FLEET_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_FLEET_PROFILE}`] : [];
    const bot = execa('node', [...profile, 'bin/pg-backup-bot.js', 'bot'], {
      env: { ...env, PORT: String(port), METRICS_PORT: String(botMetrics) },
      reject: false,
      all: true,
      buffer: false,
    });
    children.push(bot);
    await until('the bot', 60_000, async () =>
      fetch(`http://127.0.0.1:${botMetrics}/healthz`).then(
        (r) => r.ok,
        () => false,
      ),
    );
    const botOut = tail(bot.all);
    const url = `http://127.0.0.1:${port}/slack/events`;
    // Slack's port opens after /healthz's: the first answered command is the warm-up.
    await until('the Slack port', 60_000, async () =>
      fire(url, burstRequests(SIGNING_SECRET, 'help', ['U0ONCALL'])).then(
        () => true,
        () => false,
      ),
    ).catch((err: unknown) => {
      throw new Error(`${String(err)}; the bot said:\n${botOut()}`);
    });
    const rows: string[] = [];
    for (const text of ['status', 'list', 'health']) {
      await fire(url, burstRequests(SIGNING_SECRET, text, ['U0ONCALL'], responses.url)); // warm-up
      await new Promise((r) => setTimeout(r, 1000));
      const [ms, full]: [number[], number[]] = [[], []];
      let chars = 0;
      for (let i = 0; i < ROUNDS; i++) {
        const t0 = performance.now();
        const [answer] = await fire(url, burstRequests(SIGNING_SECRET, text, ['U0ONCALL'], `${responses.url}/${text}-${i}`));
        if (answer?.status !== 200) throw new Error(`/backup ${text}: ${answer?.status} ${answer?.text.slice(0, 300)}`);
        ms.push(answer.ms);
        chars = answer.text.length;
        // A fleet's health acks first and answers through response_url: the full answer is that post.
        if (/^Checking the health/.test(answer.text)) {
          const later = await until('the health answer', 10_000, async () => responses.got.get(`${text}-${i}`));
          full.push(later.at - t0);
          chars = later.chars;
        } else full.push(answer.ms);
      }
      rows.push(
        `| /backup ${text} | ${percentile(ms, 0.5).toFixed(0)} | ${percentile(ms, 0.99).toFixed(0)} | ${percentile(full, 0.5).toFixed(0)} | ${percentile(full, 0.99).toFixed(0)} | ${chars} |`,
      );
    }
    const healthMs: number[] = [];
    for (let i = 0; i < 3; i++) {
      const job = await queues.health.add('health', {}, { jobId: `bench-health-${i}` });
      const done = await until('the health run', 120_000, async () => {
        const j = await queues.health.getJob(job.id ?? '');
        return j?.finishedOn ? j : undefined;
      });
      healthMs.push((done.finishedOn ?? 0) - (done.processedOn ?? 0));
    }
    const [botMb, workerMb] = [await vmHwmMb(bot.pid), await vmHwmMb(worker.pid)];
    log('\n| command | ack p50 ms | ack p99 ms | full answer p50 ms | full answer p99 ms | answer chars |\n|---|---|---|---|---|---|');
    for (const r of rows) log(r);
    log(`\nhealth run over ${TARGETS} targets: ${healthMs.map((m) => (m / 1000).toFixed(2)).join(' s, ')} s`);
    log(`peak RSS: bot ${botMb.toFixed(0)} MB, worker ${workerMb.toFixed(0)} MB`);
    await queues.close();
    await redis.quit();
  } finally {
    for (const c of children) c.kill('SIGTERM');
    await Promise.allSettled(children);
    await slack.close();
    await responses.close();
    await Promise.allSettled([pgServer.stop(), redisServer.stop()]);
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
