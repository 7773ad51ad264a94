import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { generateKeyPair } from '../../src/crypto/age.ts';
import { createTestDatabase } from '../support/databases.ts';
import { type BotProcess, startBotProcess } from '../support/bot-processes.ts';
import { startSlackServer, type SlackServer } from '../support/slack-server.ts';
import { BOT_TOKEN, SIGNING_SECRET, loadSampleSchema, slash } from './harness.ts';

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
  const alive = (pid: number) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
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
    process.kill(first as number, 'SIGKILL');
    const statuses: number[] = [];
    await until('a second worker child', async () => {
      statuses.push(await healthz(b));
      return workerPids(b).length === 2 && statuses.at(-1) === 200;
    });
    expect(statuses).toContain(503);
    const told = await slack.waitFor((c) => c.method === 'chat.postMessage' && /worker process/.test(String(c.body.text)), 10_000);
    expect(String(told.body.text)).toMatch(/The worker process of pg-backup-bot on .+ killed by SIGKILL .*after .*starting it again in 1 s/);
    expect(String(told.body.text)).toContain('/healthz answers 503');
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
    // One message for the one death: a clean stop is not reported as one.
    expect(slack.calls.filter((c) => c.method === 'chat.postMessage' && /worker process/.test(String(c.body.text)))).toHaveLength(1);
  }, 120_000);

  it('a worker child whose parent is killed stops by itself', async () => {
    const b = await start();
    const [pid] = workerPids(b);
    process.kill(b.child.pid as number, 'SIGKILL');
    await until('the orphaned worker child to stop', () => !alive(pid as number), 40_000);
    expect(b.output()).toMatch(/"signal":"the supervising process is gone"[^\n]*shutting down/);
  }, 60_000);
});
