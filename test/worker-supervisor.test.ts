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

/** A supervisor whose first child is ready. */
const started = async (options: Parameters<typeof superviseWorker>[0]) => {
  const supervisor = superviseWorker(options);
  await supervisor.ready;
  return supervisor;
};

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
    const supervisor = await started({ log, spawn: child('ready-then-exit', '3'), restartBaseMs: 40, announce: async (t) => told.push(t) });
    const restarts = () => lines.filter((l) => l.restartInMs !== undefined).map((l) => l.restartInMs);
    await until(() => restarts().length >= 4);
    await supervisor.stop();
    expect(restarts().slice(0, 4)).toEqual([40, 80, 160, 320]);
    expect(lines.find((l) => l.restartInMs === 40)?.msg).toMatch(/^worker process exited with code 3 after running for .+; restarting it$/);
    // A crash loop is one story: the first death is posted, the next ones within 10 minutes only logged.
    expect(told).toHaveLength(2);
    expect(told[0]).toMatch(/exited with code 3 after running for .*; starting it again in 40 ms\. No backup/);
    // Then its return, once, and nothing for the next deaths within 10 minutes.
    expect(told[1]).toMatch(/^:white_check_mark: The worker process of pg-backup-bot on .+ is running again \(pid \d+\)\.$/);
    const starts = lines.filter((l) => l.msg === 'worker process started').length;
    await new Promise((r) => setTimeout(r, 700));
    // Stopped: no child is started again.
    expect(lines.filter((l) => l.msg === 'worker process started').length).toBe(starts);
  });

  it('says once more when the wait between restarts reaches its longest, with the deaths since', async () => {
    const { log } = capture();
    const told: string[] = [];
    const supervisor = await started({ log, spawn: child('ready-then-exit', '3'), restartBaseMs: 40, maxRestartMs: 160, announce: async (t) => told.push(t) });
    await until(() => told.length >= 4, 5_000);
    await supervisor.stop();
    expect(told[2]).toMatch(
      /exited with code 3 after running for .*; it keeps dying: started again every 160 ms from now on\. It has died 2 times since the last message\./,
    );
    expect(told[3]).toMatch(/is running again/);
  });

  it('does not count a graceful end that its own stop follows within a second (a signal to the whole group)', async () => {
    const { log, lines } = capture();
    const told: string[] = [];
    const supervisor = await started({ log, spawn: child('ready-then-exit', '0'), restartBaseMs: 40, announce: async (t) => told.push(t) });
    await until(() => supervisor.pid() === null);
    await new Promise((r) => setTimeout(r, 300));
    await supervisor.stop();
    await new Promise((r) => setTimeout(r, 1_000));
    expect(told).toEqual([]);
    expect(lines.filter((l) => l.restartInMs !== undefined)).toEqual([]);

    // With no stop after it, the same end is a death (a child must not stop on its own).
    const lone = await started({ log, spawn: child('ready-then-exit', '0'), restartBaseMs: 40, announce: async (t) => told.push(t) });
    await until(() => told.length === 1, 3_000);
    await lone.stop();
    expect(told[0]).toMatch(/exited with code 0 after/);
  });

  it('kills a child that sends no heartbeat, tells the channel so, and starts another', async () => {
    const { log, lines } = capture();
    const told: string[] = [];
    // Its start may take longer than 600 ms on a loaded machine (CI): only the heartbeat is under test here.
    const supervisor = await started({ log, spawn: child('hang'), hungMs: 300, readyMs: 10_000, restartBaseMs: 40, announce: async (t) => told.push(t) });
    const first = supervisor.pid();
    await until(() => told.length >= 1 && supervisor.pid() !== null && supervisor.pid() !== first, 5_000);
    await supervisor.stop();
    expect(told[0]).toMatch(
      /worker process of pg-backup-bot on .+ sent no heartbeat for 300 ms \(hung or stopped\) and was killed after running for .*; starting it again in 40 ms/,
    );
    expect(lines.some((l) => l.msg === 'worker process sent no heartbeat for 300 ms (hung or stopped) and was killed' && l.workerPid === first)).toBe(true);
  });

  it('kills a first child that never gets ready, and can be stopped while one starts', async () => {
    const { log } = capture();
    const slow = superviseWorker({ log, spawn: child('silent'), hungMs: 200, announce: async () => {} });
    await expect(slow.ready).rejects.toThrow('The worker process was not ready 400 ms after its start and was killed before it was ready');
    const stopped = superviseWorker({ log, spawn: child('silent'), announce: async () => {} });
    const pid = stopped.pid() as number;
    await stopped.stop();
    await expect(stopped.ready).rejects.toThrow('Stopped before the worker process was ready.');
    expect(() => process.kill(pid, 0)).toThrow();
  });

  it('fails the start when the first child dies before it is ready', async () => {
    const { log } = capture();
    await expect(superviseWorker({ log, spawn: child('exit', '78'), announce: async () => {} }).ready).rejects.toThrow(
      'The worker process exited with code 78 before it was ready: its log lines above say why.',
    );
  });

  it('is healthy while the heartbeat says every worker runs, and not when it says one stopped', async () => {
    const { log } = capture();
    const good = await started({ log, spawn: child('beat', 'true'), announce: async () => {} });
    await new Promise((r) => setTimeout(r, 250));
    expect(good.healthy()).toBe(true);
    expect(good.pid()).toBeGreaterThan(0);
    await good.stop();
    expect(good.healthy()).toBe(false);
    expect(good.pid()).toBeNull();

    const bad = await started({ log, spawn: child('beat', 'false'), announce: async () => {} });
    await until(() => !bad.healthy(), 2_000);
    expect(bad.healthy()).toBe(false);
    await bad.stop();
  });
});
