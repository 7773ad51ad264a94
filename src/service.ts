import type { Config, Mode } from './config.ts';
import { createDeps, type Deps, type DepsOverrides } from './deps.ts';
import type { Logger } from './logger.ts';
import type { SlackApp } from './slack-app.ts';
import { startWorkers, type WorkerOptions, type Workers } from './workers/index.ts';

export interface Service {
  deps: Deps;
  slack: SlackApp | null;
  workers: Workers | null;
  stop(): Promise<void>;
}

/** `all` = bot + workers in one process; `bot` and `worker` run them apart so workers scale out on more hosts. */
export async function startService(
  config: Config,
  log: Logger,
  mode: Extract<Mode, 'all' | 'bot' | 'worker'>,
  overrides: DepsOverrides & { workerOptions?: WorkerOptions } = {},
): Promise<Service> {
  const deps = await createDeps(config, log, overrides);
  let workers: Workers | null = null;
  let slack: SlackApp | null = null;
  try {
    if (mode !== 'bot') workers = await startWorkers(deps, overrides.workerOptions);
    if (mode !== 'worker') {
      // Loaded only where Slack is served: a `worker` process never loads Bolt, its HTTP server and Socket Mode
      // client (about 300 files and 25 MiB of a worker's resident memory).
      const [{ startSlackApp }, { actionTable, checkboxTable, commandDepsFrom, commandTable }, { renderMetrics }] = await Promise.all([
        import('./slack-app.ts'),
        import('./commands/index.ts'),
        import('./health/scrape.ts'),
      ]);
      const commandDeps = commandDepsFrom(deps);
      const running = workers;
      slack = await startSlackApp({
        config,
        log,
        handlers: commandTable(commandDeps),
        actions: actionTable(commandDeps),
        checkboxes: checkboxTable(commandDeps),
        // Healthy = Redis answers and, where this process runs workers, every worker is running.
        healthy: async () => (await deps.redis.ping()) === 'PONG' && (running === null || running.running()),
        metrics: () => renderMetrics(deps),
      });
    }
  } catch (err) {
    await workers?.close();
    await deps.close();
    throw err;
  }
  let stopping: Promise<void> | undefined;
  return {
    deps,
    slack,
    workers,
    stop() {
      stopping ??= (async () => {
        await slack?.stop();
        await workers?.close();
        await deps.close();
      })();
      return stopping;
    },
  };
}
