import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { generateKeyPair } from '../../../src/crypto/age.ts';
import { type EphemeralPostgres, startEphemeralPostgres } from '../../../src/dev/ephemeral.ts';
import { walLeaseKey } from '../../../src/jobs/wal-lease.ts';
import { readWalState } from '../../../src/jobs/wal-state.ts';
import { walStatusLines } from '../../../src/commands/wal-status.ts';
import { loadConfig } from '../../../src/config.ts';
import { segmentPosition } from '../../../src/postgres/pitr/window.ts';
import { LocalWalStore } from '../../../src/postgres/pitr/wal-store.ts';
import { withClient } from '../../support/postgres-helpers.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Every pg_receivewal streaming this slot on the machine (not the short-lived --create-slot runs), with its parent. */
async function receivers(slot: string): Promise<Array<{ pid: number; ppid: number }>> {
  const out: Array<{ pid: number; ppid: number }> = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const cmd = (await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '')).replace(/\0/g, ' ');
    if (!cmd.includes('pg_receivewal') || !cmd.includes(`--slot=${slot}`) || cmd.includes('--create-slot')) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    if (stat) out.push({ pid: Number(entry), ppid: Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) });
  }
  return out;
}

/**
 * One receiver per target across workers: two worker processes (the real startWalArchives, each in a child process
 * of its own) on one Redis and one source. Only the lease holder streams; killed with SIGKILL, the other takes over
 * within the lease's TTL plus its retry, ends the dead holder's connection to the slot, and the archive has every
 * segment from before the kill to after the takeover.
 */
describe('the WAL lease', () => {
  let source: EphemeralPostgres;
  let dir: string;
  let redis: Redis;
  let env: Record<string, string>;
  const prefix = `{pgbbt${randomBytes(3).toString('hex')}}`;
  const slot = 'pgbb_lease_test';
  const workers: Array<{ kill(signal: NodeJS.Signals): unknown }> = [];

  beforeAll(async () => {
    source = await startEphemeralPostgres();
    dir = await mkdtemp(join(tmpdir(), 'pgbb-lease-'));
    const keys = await generateKeyPair();
    await writeFile(
      join(dir, 'bot.yml'),
      `targets:\n  - name: app\n    urlEnv: APP_URL\n    environment: production\n    pitr: { urlEnv: APP_REPL_URL, slot: ${slot} }\n`,
    );
    env = {
      PATH: process.env.PATH ?? '',
      BOT_CONFIG: join(dir, 'bot.yml'),
      APP_URL: source.url,
      APP_REPL_URL: source.url,
      BACKUP_DIR: join(dir, 'backups'),
      BACKUP_ENCRYPTION_RECIPIENT: keys.recipient,
      REDIS_URL: inject('redisUrl'),
      QUEUE_PREFIX: prefix,
    };
    redis = new Redis(inject('redisUrl'));
  });

  afterAll(async () => {
    for (const w of workers) w.kill('SIGKILL');
    // The killed worker's pg_receivewal outlives it until the server ends its connection; none is left running.
    for (const r of await receivers(slot)) process.kill(r.pid, 'SIGKILL');
    redis?.disconnect();
    await source?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const until = async <T>(what: string, f: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> => {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const v = await f();
      if (v !== undefined) return v;
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}; the workers said:\n${logs.join('\n---\n')}`);
      await sleep(100);
    }
  };

  const logs: string[] = [];
  const startWorker = async () => {
    const w = execa(process.execPath, ['--import', 'tsx', 'test/postgres/pitr/lease-worker.ts'], { env, extendEnv: false, reject: false, buffer: false });
    workers.push(w);
    const i = logs.push('') - 1;
    const keep = (c: Buffer) => (logs[i] += c.toString());
    w.stdout?.on('data', keep);
    w.stderr?.on('data', keep);
    await until('the worker started', async () => {
      if (w.exitCode !== null) throw new Error(`the worker exited: ${logs[i]}`);
      return /^started$/m.test(logs[i] ?? '') ? true : undefined;
    });
    return { proc: w, pid: w.pid as number, said: () => logs[i] ?? '' };
  };

  const switchSegment = () =>
    withClient(source.url, async (c) => {
      await c.query('CREATE TABLE IF NOT EXISTS probe (n int)');
      await c.query('INSERT INTO probe SELECT generate_series(1, 100)');
      // The segment the switch completed (or, with nothing written since the last switch, the one before).
      const { rows } = await c.query<{ name: string }>('SELECT pg_walfile_name(pg_switch_wal()) AS name');
      return rows[0]?.name as string;
    });
  const store = () => new LocalWalStore(env.BACKUP_DIR as string, 'app');
  const archived = (name: string, timeoutMs = 60_000) => until(`WAL ${name} archived`, async () => ((await store().entry(name)) ? true : undefined), timeoutMs);

  it('lets one worker stream; after a kill -9 the other takes over within the TTL plus its retry, and no segment is lost', { timeout: 240_000 }, async () => {
    const a = await startWorker();
    const b = await startWorker();
    const holderToken = await until('a lease holder', async () => (await redis.get(walLeaseKey(prefix, 'app'))) ?? undefined);
    const [holder, other] = holderToken.includes(`pid ${a.pid} `) ? [a, b] : [b, a];
    expect(holderToken).toContain(`pid ${holder.pid} `);
    await until('the holder streaming', async () => ((await readWalState(redis, prefix, 'app'))?.receiver === 'up' ? true : undefined));
    expect((await readWalState(redis, prefix, 'app'))?.holder).toMatch(new RegExp(` pid ${holder.pid}$`));
    const first = await switchSegment();
    await archived(first);
    // Only one streams, and it is the holder's: for several renewals, the other never starts a receiver.
    for (let i = 0; i < 10; i++) {
      const running = await receivers(slot);
      expect(running.map((r) => r.ppid)).toEqual([holder.pid]);
      await sleep(300);
    }

    const killedAt = Date.now();
    process.kill(holder.pid, 'SIGKILL');
    // Its pg_receivewal stops with it (parent-death signal, child-pipes.ts dyingWithUs): no orphan streams on for a
    // dead worker (QA: health counted one as "a receiver is connected").
    await until('the dead holder’s receiver gone', async () => ((await receivers(slot)).some((r) => r.ppid === holder.pid) ? undefined : true), 10_000);
    // A receiver the bot cannot stop that way (its host is gone, its connection not yet closed): one started by hand.
    const stray = execa(
      join(source.binDir, 'pg_receivewal'),
      [`--directory=${dir}`, `--slot=${slot}`, '--no-loop', '--no-password', `--dbname=${source.url}`],
      {
        reject: false,
        stdin: 'ignore',
      },
    );
    workers.push(stray);
    await until('the stray receiver streaming', async () => ((await receivers(slot)).some((r) => r.pid === stray.pid) ? true : undefined), 10_000);
    // Written while nobody archives: the slot (and the stray receiver) keeps it.
    const during = await switchSegment();
    const leaseTakenAt = await until(
      'the lease taken over',
      async () => ((await redis.get(walLeaseKey(prefix, 'app')))?.includes(`pid ${other.pid} `) ? Date.now() : undefined),
      60_000,
    );
    // The lease expires 3 s after the dead holder's last renewal (sent up to 1 s before the kill); the other asks
    // every 0.5 s: taken within 3 s + 0.5 s, plus this poll's own step.
    expect(leaseTakenAt - killedAt).toBeLessThan(3000 + 500 + 1000);
    const takenAt = await until(
      'the other worker streaming',
      async () => {
        const s = await readWalState(redis, prefix, 'app');
        return s?.receiver === 'up' && s.holder?.endsWith(` pid ${other.pid}`) ? Date.now() : undefined;
      },
      60_000,
    );
    expect(await redis.get(walLeaseKey(prefix, 'app'))).toContain(`pid ${other.pid} `);
    // Then the slot freed of the dead holder's connection and pg_receivewal started: seconds, not wal_sender_timeout.
    expect(takenAt - leaseTakenAt).toBeLessThan(10_000);
    expect((await walStatusLines(loadConfig(env, 'cli'), redis)).join('\n')).toMatch(
      new RegExp(`:white_check_mark: streaming since .* on \\S+ pid ${other.pid};`),
    );
    // The stray's connection was ended through its walsender: one receiver again, the new holder's.
    await until('one receiver', async () => {
      const running = await receivers(slot);
      return running.length === 1 && running[0]?.ppid === other.pid ? true : undefined;
    });
    // Not waited out: the new holder ended the slot's connection (a receiver whose host is gone would otherwise keep
    // it until the server's wal_sender_timeout).
    expect(other.said()).toMatch(/"msg":"ended the previous receiver’s connection to the slot"/);
    const last = await switchSegment();
    await archived(during);
    await archived(last);
    const names = (await store().list()).map((e) => e.name).filter((n) => !n.endsWith('.history'));
    const run = names.slice(names.indexOf(first), names.indexOf(last) + 1).map((n) => segmentPosition(n).n);
    expect(segmentPosition(last).n).toBeGreaterThan(segmentPosition(first).n);
    expect(run.length).toBe(segmentPosition(last).n - segmentPosition(first).n + 1);
    for (let i = 1; i < run.length; i++) expect(run[i]).toBe((run[i - 1] as number) + 1);

    // A clean stop releases the lease at once: nobody holds it, no receiver runs.
    other.proc.kill('SIGTERM');
    await other.proc;
    expect(await redis.get(walLeaseKey(prefix, 'app'))).toBeNull();
    expect(await receivers(slot)).toEqual([]);
    // /backup status says it: the stream is down since the stop, and why.
    expect((await walStatusLines(loadConfig(env, 'cli'), redis)).join('\n')).toMatch(
      new RegExp(`WAL stream DOWN since .* on \\S+ pid ${other.pid}; .*the worker receiving this WAL stopped \\(restart or shutdown\\)`),
    );
  });
});
