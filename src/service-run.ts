import type { Config } from './config.ts';
import type { Logger } from './logger.ts';
import { type Service, startService } from './service.ts';
import { createWorkerPager, type WorkerPager } from './worker-pager.ts';
import { HEARTBEAT_MS, superviseWorker, type WorkerReport } from './worker-supervisor.ts';

/** How `all`, `bot` and `worker` run until a signal stops them (main.ts). */

/**
 * Resolves once `stop` has run after SIGTERM or SIGINT (or `also`, e.g. the supervisor gone), or `forceMs` (30 s)
 * after it began: worker.close() waits for running jobs, and a deploy must not be held for hours by a dump.
 * `signaled()` says whether a stop has begun.
 */
export function untilStopSignal(
  log: Logger,
  stop: () => Promise<unknown>,
  also?: (shutdown: (why: string) => void) => void,
  forceMs = 30_000,
): Promise<void> & { signaled(): boolean } {
  let began = false;
  const done = new Promise<void>((resolve) => {
    const shutdown = (signal: string) => {
      log.info({ signal }, 'shutting down');
      if (began) return;
      began = true;
      const force = setTimeout(() => {
        log.warn('shutdown took too long; exiting with jobs still running (they will be retried as stalled)');
        resolve();
      }, forceMs);
      force.unref();
      stop().finally(() => {
        clearTimeout(force);
        resolve();
      });
    };
    // `on`, not `once`: execa's signal-exit re-raises a signal no other listener is left to handle, which
    // would kill the process in the middle of its graceful stop. stop() runs once.
    process.on('SIGTERM', () => shutdown('SIGTERM'));
    process.on('SIGINT', () => shutdown('SIGINT'));
    also?.(shutdown);
  });
  return Object.assign(done, { signaled: () => began });
}

/**
 * `all`: the bot in this process, its workers in a supervised child (worker-supervisor.ts). Signals are handled from
 * the first moment: a stop while either is still starting stops what has started, the child included.
 */
export async function runSupervised(config: Config, parentLog: Logger): Promise<number> {
  const log = parentLog.child({ process: 'bot' });
  let service: Service | null = null;
  let pager: WorkerPager | null = null;
  const supervisor = superviseWorker({
    log,
    announce: (text) => (service ? service.deps.notifier.post({ text }) : Promise.reject(new Error('the bot is not up yet'))),
    // A child dying in a loop is paged by this process: the worker that delivers every other page is what is down.
    pager: {
      down: (summary, details) => pager?.down(summary, details) ?? Promise.resolve('PagerDuty could not be paged: the bot was still starting'),
      up: (summary) => pager?.up(summary) ?? Promise.resolve(null),
    },
  });
  const starting = startService(config, log, 'bot', { workerChild: supervisor });
  // Longer than the supervisor's wait for the child (STOP_GRACE_MS), so no child outlives this process.
  const done = untilStopSignal(
    log,
    () =>
      Promise.all([
        supervisor.stop(),
        starting.then(
          (s) => s.stop(),
          () => undefined,
        ),
      ]),
    undefined,
    40_000,
  );
  const [child, bot] = await Promise.allSettled([supervisor.ready, starting]);
  if (!done.signaled() && (child.status === 'rejected' || bot.status === 'rejected')) {
    await Promise.allSettled([supervisor.stop(), bot.status === 'fulfilled' && bot.value.stop()]);
    throw child.status === 'rejected' ? child.reason : (bot as PromiseRejectedResult).reason;
  }
  if (bot.status === 'fulfilled') {
    service = bot.value;
    const { deps } = service;
    pager = createWorkerPager({ ...deps, prefix: config.queuePrefix, client: deps.pagerDuty, log });
  }
  await done;
  pager?.stop();
  return 0;
}

/**
 * `worker` under `all`'s supervisor: no HTTP server (the parent's /healthz answers for it), a heartbeat up the IPC
 * channel, and a graceful stop when that channel closes: the parent is gone, even if by SIGKILL, even while this
 * process was still starting.
 */
export async function runSupervisedChild(config: Config, log: Logger): Promise<number> {
  const childLog = log.child({ process: 'worker' });
  let parentGone = false;
  process.once('disconnect', () => {
    parentGone = true;
  });
  const service = await startService(config, childLog, 'worker', { serveHttp: false });
  // With a callback, a failed send (the parent gone: EPIPE) is an answer, not an 'error' event that kills us.
  const report = (m: WorkerReport) => {
    if (process.connected) process.send?.(m, () => undefined);
  };
  const beat = setInterval(() => report({ type: 'heartbeat', ok: service.workers?.running() ?? false, usage: processUsage() }), HEARTBEAT_MS);
  const stop = () => {
    clearInterval(beat);
    return service.stop();
  };
  const done = untilStopSignal(childLog, stop, (shutdown) => {
    if (parentGone || !process.connected || !process.send) shutdown('the supervising process is gone');
    else process.on('disconnect', () => shutdown('the supervising process is gone'));
  });
  report({ type: 'ready' });
  await done;
  return 0;
}

/** This process's memory and CPU, for the parent's /metrics. */
function processUsage() {
  const [cpu, memory] = [process.cpuUsage(), process.memoryUsage()];
  return { rssBytes: memory.rss, heapUsedBytes: memory.heapUsed, cpuSeconds: (cpu.user + cpu.system) / 1e6 };
}
