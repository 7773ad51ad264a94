import type { Config } from './config.ts';
import type { Logger } from './logger.ts';
import { type Service, startService } from './service.ts';
import { HEARTBEAT_MS, superviseWorker, type WorkerReport, type WorkerSupervisor } from './worker-supervisor.ts';

/** How `all`, `bot` and `worker` run until a signal stops them (main.ts). */

/**
 * Resolves once `stop` has run after SIGTERM or SIGINT (or `also`, e.g. the supervisor gone), or 30 s after it
 * began: worker.close() waits for running jobs, and a deploy must not be held for hours by a dump.
 */
export function untilStopSignal(log: Logger, stop: () => Promise<unknown>, also?: (shutdown: (why: string) => void) => void): Promise<void> {
  return new Promise<void>((resolve) => {
    const shutdown = (signal: string) => {
      log.info({ signal }, 'shutting down');
      const force = setTimeout(() => {
        log.warn('shutdown took too long; exiting with jobs still running (they will be retried as stalled)');
        resolve();
      }, 30_000);
      force.unref();
      stop().finally(() => {
        clearTimeout(force);
        resolve();
      });
    };
    // `on`, not `once`: execa's signal-exit re-raises a signal no other listener is left to handle, which
    // would kill the process in the middle of its graceful stop. stop() is idempotent.
    process.on('SIGTERM', () => shutdown('SIGTERM'));
    process.on('SIGINT', () => shutdown('SIGINT'));
    also?.(shutdown);
  });
}

/** `all`: the bot in this process, its workers in a supervised child (worker-supervisor.ts). */
export async function runSupervised(config: Config, log: Logger): Promise<number> {
  let supervisor: WorkerSupervisor | null = null;
  let service: Service | null = null;
  const [child, bot] = await Promise.allSettled([
    superviseWorker({
      log,
      announce: (text) => (service ? service.deps.notifier.post({ text }) : Promise.reject(new Error('the bot is not up yet'))),
    }),
    startService(config, log, 'bot', { workerChildHealthy: () => supervisor?.healthy() ?? false }),
  ]);
  if (child.status === 'rejected' || bot.status === 'rejected') {
    await Promise.allSettled([child.status === 'fulfilled' && child.value.stop(), bot.status === 'fulfilled' && bot.value.stop()]);
    throw child.status === 'rejected' ? child.reason : (bot as PromiseRejectedResult).reason;
  }
  supervisor = child.value;
  service = bot.value;
  const [running, served] = [supervisor, service];
  await untilStopSignal(log, () => Promise.all([running.stop(), served.stop()]));
  return 0;
}

/**
 * `worker` under `all`'s supervisor: no HTTP server (the parent's /healthz answers for it), a heartbeat up the IPC
 * channel, and a graceful stop when that channel closes: the parent is gone, even if by SIGKILL.
 */
export async function runSupervisedChild(config: Config, log: Logger): Promise<number> {
  const service = await startService(config, log, 'worker', { serveHttp: false });
  const report = (m: WorkerReport) => {
    if (process.connected) process.send?.(m);
  };
  report({ type: 'ready' });
  const beat = setInterval(() => report({ type: 'heartbeat', ok: service.workers?.running() ?? false }), HEARTBEAT_MS);
  await untilStopSignal(
    log,
    () => {
      clearInterval(beat);
      return service.stop();
    },
    (shutdown) => process.on('disconnect', () => shutdown('the supervising process is gone')),
  );
  return 0;
}
