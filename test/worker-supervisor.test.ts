import { fork } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../src/logger.ts';
import { superviseWorker } from '../src/worker-supervisor.ts';

/**
 * The supervisor of `all`'s worker child, with stand-in children (test/fixtures/worker-child.mjs) that die or beat
 * as told: a crash loop backs off and is told once, a child that never got ready fails the start, a heartbeat that
 * says a worker stopped makes the parent unhealthy. test/e2e/worker-child.test.ts runs the real child.
 */
const fixture = join(import.meta.dirname, 'fixtures', 'worker-child.mjs');
const child =
  (...args: string[]) =>
  () =>
    fork(fixture, args, { stdio: ['ignore', 'ignore', 'ignore', 'ipc'] });

function capture() {
  const lines: Array<Record<string, unknown>> = [];
  const log = createLogger({ level: 'info', destination: { write: (s: string) => lines.push(JSON.parse(s)) } });
  return { log, lines };
}

const until = async (check: () => boolean, timeoutMs = 5_000) => {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
};

describe('superviseWorker', () => {
  it('restarts a child that keeps dying, doubling the wait, and tells the channel once', async () => {
    const { log, lines } = capture();
    const told: string[] = [];
    const supervisor = await superviseWorker({ log, spawn: child('ready-then-exit', '3'), restartBaseMs: 40, announce: async (t) => told.push(t) });
    const restarts = () => lines.filter((l) => l.restartInMs !== undefined).map((l) => l.restartInMs);
    await until(() => restarts().length >= 4);
    await supervisor.stop();
    expect(restarts().slice(0, 4)).toEqual([40, 80, 160, 320]);
    expect(lines.find((l) => l.restartInMs === 40)?.msg).toMatch(/^worker process exited with code 3 after .+; restarting it$/);
    // A crash loop is one story: the first death is posted, the next ones within 10 minutes only logged.
    expect(told).toHaveLength(1);
    expect(told[0]).toMatch(/exited with code 3 after .*; starting it again in 0.04 s/);
    const started = lines.filter((l) => l.msg === 'worker process started').length;
    await new Promise((r) => setTimeout(r, 700));
    // Stopped: no child is started again.
    expect(lines.filter((l) => l.msg === 'worker process started').length).toBe(started);
  });

  it('does not count a graceful end that its own stop follows within a second (a signal to the whole group)', async () => {
    const { log, lines } = capture();
    const told: string[] = [];
    const supervisor = await superviseWorker({ log, spawn: child('ready-then-exit', '0'), restartBaseMs: 40, announce: async (t) => told.push(t) });
    await until(() => supervisor.pid() === null);
    await new Promise((r) => setTimeout(r, 300));
    await supervisor.stop();
    await new Promise((r) => setTimeout(r, 1_000));
    expect(told).toEqual([]);
    expect(lines.filter((l) => l.restartInMs !== undefined)).toEqual([]);

    // With no stop after it, the same end is a death (a child must not stop on its own).
    const lone = await superviseWorker({ log, spawn: child('ready-then-exit', '0'), restartBaseMs: 40, announce: async (t) => told.push(t) });
    await until(() => told.length === 1, 3_000);
    await lone.stop();
    expect(told[0]).toMatch(/exited with code 0 after/);
  });

  it('kills a child that sends no heartbeat, tells the channel so, and starts another', async () => {
    const { log, lines } = capture();
    const told: string[] = [];
    const supervisor = await superviseWorker({ log, spawn: child('hang'), hungMs: 300, restartBaseMs: 40, announce: async (t) => told.push(t) });
    const first = supervisor.pid();
    await until(() => told.length === 1 && supervisor.pid() !== null && supervisor.pid() !== first, 5_000);
    await supervisor.stop();
    expect(told[0]).toMatch(
      /worker process of pg-backup-bot on .+ sent no heartbeat for 300 ms \(hung or stopped\) and was killed after .*; starting it again in 0\.04 s/,
    );
    expect(lines.some((l) => l.msg === 'worker process sends no heartbeat; killing it' && l.workerPid === first)).toBe(true);
  });

  it('fails the start when the first child dies before it is ready', async () => {
    const { log } = capture();
    await expect(superviseWorker({ log, spawn: child('exit', '78'), announce: async () => {} })).rejects.toThrow(
      'the worker process exited with code 78 before it was ready: its log lines above say why',
    );
  });

  it('is healthy while the heartbeat says every worker runs, and not when it says one stopped', async () => {
    const { log } = capture();
    const good = await superviseWorker({ log, spawn: child('beat', 'true'), announce: async () => {} });
    await new Promise((r) => setTimeout(r, 250));
    expect(good.healthy()).toBe(true);
    expect(good.pid()).toBeGreaterThan(0);
    await good.stop();
    expect(good.healthy()).toBe(false);
    expect(good.pid()).toBeNull();

    const bad = await superviseWorker({ log, spawn: child('beat', 'false'), announce: async () => {} });
    await until(() => !bad.healthy(), 2_000);
    expect(bad.healthy()).toBe(false);
    await bad.stop();
  });
});
