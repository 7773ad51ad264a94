import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { freePort } from '../../src/dev/ephemeral.ts';
import { generateKeyPair } from '../../src/crypto/age.ts';
import { createTestDatabase } from '../support/databases.ts';
import { type BotProcess, startBotProcess } from '../support/bot-processes.ts';
import { startSlackServer, type SlackServer } from '../support/slack-server.ts';
import { BOT_TOKEN, SIGNING_SECRET, loadSampleSchema, slash } from './harness.ts';
import { alive } from '../support/proc.ts';

/**
 * `pg-backup-bot all` (npm start) answers Slack in its own process and runs the workers in a child it supervises:
 * a child that dies is told to the channel and started again, /healthz says 503 while it is down, a SIGTERM stops
 * both, and a parent that is gone (SIGKILL) takes its child with it.
 */
describe('pg-backup-bot all: its worker child', () => {
  let slack: SlackServer;
  let dir: string;
  let dbDrop: () => Promise<void>;
  let env: Record<string, string>;
  let bot: BotProcess | null = null;
  let n = 0;

  beforeAll(async () => {
    slack = await startSlackServer({ botToken: BOT_TOKEN, channels: { incidents: 'C0INCIDENTS' } });
    const db = await createTestDatabase(inject('pgUrl'), 'child');
    dbDrop = db.drop;
    await loadSampleSchema(db.url);
    dir = await mkdtemp(join(tmpdir(), 'pgbb-child-'));
    env = {
      SLACK_BOT_TOKEN: BOT_TOKEN,
      SLACK_SIGNING_SECRET: SIGNING_SECRET,
      SLACK_API_URL: slack.url,
      SLACK_CHANNEL: '#incidents',
      REDIS_URL: inject('redisUrl'),
      DATABASE_URL: db.url,
      BACKUP_DIR: join(dir, 'backups'),
      BACKUP_ENCRYPTION_RECIPIENT: (await generateKeyPair()).recipient,
      FIRST_BACKUP_AT_START: 'false',
      LOG_LEVEL: 'info',
    };
  });

  afterEach(() => bot?.kill());

  afterAll(async () => {
    await Promise.allSettled([slack?.close(), dbDrop?.()]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const start = async () => {
    bot = await startBotProcess('all', { ...env, QUEUE_PREFIX: `{child-${process.pid}-${n++}}` });
    return bot;
  };
  /** The pids the parent logged for its worker children, in order. */
  const workerPids = (b: BotProcess) => [...b.output().matchAll(/"workerPid":(\d+)[^\n]*worker process started/g)].map((m) => Number(m[1]));
  const until = async (what: string, check: () => boolean | Promise<boolean>, timeoutMs = 30_000) => {
    const end = Date.now() + timeoutMs;
    while (!(await check())) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}:\n${bot?.output().slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  };
  /** The distinct niceness values of a process's threads (field 19 of /proc/<pid>/task/<tid>/stat). */
  const niceness = async (pid: number) => {
    const tids = await readdir(`/proc/${pid}/task`);
    const values = await Promise.all(tids.map(async (t) => Number((await readFile(`/proc/${pid}/task/${t}/stat`, 'utf8')).split(') ')[1]?.split(' ')[16])));
    return { threads: tids.length, values: [...new Set(values)] };
  };
  const healthz = (b: BotProcess) =>
    fetch(`${b.metricsUrl}/healthz`).then(
      (r) => r.status,
      () => 0,
    );

  it('tells the channel when the worker child dies, answers 503 until it is back, and the new one takes backups', async () => {
    const b = await start();
    const [first] = workerPids(b);
    expect(first).toBeGreaterThan(0);
    expect(first).not.toBe(b.child.pid);
    // The child and every thread of it run at the tools' niceness, so the acks of the parent (niceness 0) go first.
    expect(await niceness(first as number)).toEqual({ threads: expect.any(Number), values: [10] });
    expect((await niceness(b.child.pid as number)).values).toEqual([0]);
    const gauge = () =>
      fetch(`${b.metricsUrl}/metrics`).then(
        async (r) => /^pgbb_worker_process_up (\d)$/m.exec(await r.text())?.[1],
        () => undefined,
      );
    expect(await gauge()).toBe('1');
    const metric = async (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(await (await fetch(`${b.metricsUrl}/metrics`)).text())?.[1]);
    // The child's own memory and CPU, from its heartbeats (the process metrics beside them are the parent's).
    await until('the child reporting its usage', async () => (await metric('pgbb_worker_process_resident_memory_bytes')) > 50e6);
    expect(await metric('pgbb_worker_process_heap_used_bytes')).toBeGreaterThan(1e6);
    expect(await metric('pgbb_worker_process_cpu_seconds')).toBeGreaterThan(0);
    expect(await metric('pgbb_worker_process_restarts_total')).toBe(0);
    process.kill(first as number, 'SIGKILL');
    const statuses: number[] = [];
    const gauges = new Set<string | undefined>();
    await until('a second worker child', async () => {
      statuses.push(await healthz(b));
      gauges.add(await gauge());
      return workerPids(b).length === 2 && statuses.at(-1) === 200;
    });
    expect(statuses).toContain(503);
    // Prometheus sees it too (PgBackupWorkerProcessDown, deploy/prometheus/alerts.yml), while /metrics itself answers.
    expect(gauges).toContain('0');
    expect(await gauge()).toBe('1');
    expect(await metric('pgbb_worker_process_restarts_total')).toBe(1);
    const told = await slack.waitFor((c) => c.method === 'chat.postMessage' && /worker process/.test(String(c.body.text)), 10_000);
    expect(String(told.body.text)).toMatch(/The worker process of pg-backup-bot on .+ killed by SIGKILL .*after running for .*; starting it again in 1\.0 s/);
    expect(String(told.body.text)).toContain('/healthz answers 503');
    const back = await slack.waitFor((c) => c.method === 'chat.postMessage' && /is running again/.test(String(c.body.text)), 10_000);
    expect(String(back.body.text)).toContain(`(pid ${workerPids(b)[1]})`);
    // The new child runs the jobs: a /backup now asked of the parent is taken and reported.
    const reply = await slash({ eventsUrl: b.eventsUrl, slack }, '/backup', 'now');
    expect(JSON.stringify(reply.body)).toMatch(/queued: job/);
    await slack.waitFor((c) => c.method === 'chat.update' && /succeeded/.test(String(c.body.text)), 60_000);

    // SIGTERM stops both, the child first of all no longer running.
    const second = workerPids(b)[1] as number;
    b.child.kill('SIGTERM');
    const result = await b.child;
    expect(result.exitCode).toBe(0);
    await until('the worker child to be gone', () => !alive(second), 5_000);
    // One message for the one death and one for the return: a clean stop is not reported as a death.
    expect(slack.calls.filter((c) => c.method === 'chat.postMessage' && /worker process/.test(String(c.body.text)))).toHaveLength(2);
  }, 120_000);

  /** Pids and names of every process below `ancestor`. */
  const descendants = async (ancestor: number) => {
    const procs: Array<{ pid: number; name: string; parent: number }> = [];
    for (const pid of await readdir('/proc')) {
      if (!/^\d+$/.test(pid)) continue;
      const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
      const close = stat.lastIndexOf(')');
      if (close > 0) procs.push({ pid: Number(pid), name: stat.slice(stat.indexOf('(') + 1, close), parent: Number(stat.slice(close + 2).split(' ')[1]) });
    }
    const below = new Set([ancestor]);
    for (let grew = true; grew; ) {
      grew = false;
      for (const p of procs) if (below.has(p.parent) && !below.has(p.pid)) [grew] = [true, below.add(p.pid)];
    }
    return procs.filter((p) => p.pid !== ancestor && below.has(p.pid));
  };
  /** Holds a lock on a table the backup reads, so its pg_dump waits while the test acts. */
  const holdLock = async () => {
    const holder = new pg.Client({ connectionString: env.DATABASE_URL });
    await holder.connect();
    await holder.query('BEGIN');
    await holder.query('LOCK TABLE shop.customers IN ACCESS EXCLUSIVE MODE');
    return async () => {
      await holder.query('ROLLBACK');
      await holder.end();
    };
  };
  const untilDumping = async (b: BotProcess) => {
    const [child] = workerPids(b);
    await slash({ eventsUrl: b.eventsUrl, slack }, '/backup', 'now');
    let tools: Array<{ pid: number; name: string }> = [];
    await until('pg_dump and its pipeline under the worker child', async () => {
      tools = await descendants(child as number);
      // The stored bytes' writer is perl (perl-stages.ts; coreutils' tee where there is none).
      return ['pg_dump', 'zstd', 'perl'].every((name) => tools.some((t) => t.name === name));
    });
    return { child: child as number, tools };
  };

  it('kills the dump tools a killed worker child leaves behind', async () => {
    const b = await start();
    const release = await holdLock();
    try {
      const { child, tools } = await untilDumping(b);
      process.kill(child, 'SIGKILL');
      // pg_dump and the pipes after it were the child's: they go with it at once, not later when the retry finds
      // them (the stalled-job check takes seconds to hand the job on), and none is left beside the retry.
      await new Promise((r) => setTimeout(r, 1_000));
      expect(tools.filter((t) => alive(t.pid)).map((t) => t.name)).toEqual([]);
    } finally {
      await release();
    }
  }, 90_000);

  it('Ctrl-C (SIGINT to the terminal’s group) during a backup stops both, and the backup finishes, not FAILED', async () => {
    const b = await start();
    const release = await holdLock();
    const seen = slack.calls.length;
    try {
      const { child } = await untilDumping(b);
      // The child is a group of its own: the terminal's Ctrl-C reaches the bot alone, which stops the child gently.
      process.kill(-(b.child.pid as number), 'SIGINT');
      setTimeout(() => void release(), 1_000);
      const result = await b.child;
      expect(result.exitCode).toBe(0);
      expect(alive(child)).toBe(false);
      const verdicts = slack.calls.slice(seen).map((c) => String(c.body.text));
      expect(verdicts.some((t) => /^Backup of .* succeeded/.test(t))).toBe(true);
      expect(verdicts.filter((t) => /FAILED|worker process/.test(t))).toEqual([]);
    } finally {
      await release().catch(() => undefined);
    }
  }, 90_000);

  it('a worker child whose parent is killed while it starts stops by itself', async () => {
    const [port, metricsPort] = [await freePort(), await freePort()];
    const raw = execa('node', ['bin/pg-backup-bot.js', 'all'], {
      env: { ...env, QUEUE_PREFIX: `{child-${process.pid}-${n++}}`, PORT: String(port), METRICS_PORT: String(metricsPort) },
      reject: false,
      all: true,
      buffer: false,
    });
    let out = '';
    raw.all?.on('data', (c: Buffer) => (out += c.toString()));
    await until('the worker child to be forked', () => /"workerPid":\d+[^\n]*worker process started/.test(out));
    const pid = Number(/"workerPid":(\d+)/.exec(out)?.[1]);
    raw.kill('SIGKILL');
    await raw;
    expect(pid).toBeGreaterThan(0);
    await until('the orphaned worker child to stop', () => !alive(pid), 40_000);
  }, 60_000);

  it('a worker child whose parent is killed stops by itself', async () => {
    const b = await start();
    const [pid] = workerPids(b);
    process.kill(b.child.pid as number, 'SIGKILL');
    await until('the orphaned worker child to stop', () => !alive(pid as number), 40_000);
    // Its last line may still be on its way through the pipe when the process is gone (CI).
    const said = /"signal":"the supervising process is gone"[^\n]*shutting down/;
    await until('its shutdown line', () => said.test(b.output()), 5000).catch(() => undefined);
    expect(b.output()).toMatch(said);
  }, 60_000);
});
