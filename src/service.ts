import type { Config, Mode } from './config.ts';
import { createDeps, type Deps, type DepsOverrides } from './deps.ts';
import type { Logger } from './logger.ts';
import type { HealthServer } from './health/http.ts';
import type { SlackApp } from './slack-app.ts';
import { startWorkers, type WorkerOptions, type Workers } from './workers/index.ts';
import { createWorkerPager } from './worker-pager.ts';
import { redisPageMarker, watchRedis } from './redis-watch.ts';
import { startPresence, watchWorkers } from './worker-presence.ts';
import type { WorkerSupervisor } from './worker-supervisor.ts';

export interface Service {
  deps: Deps;
  slack: SlackApp | null;
  workers: Workers | null;
  /** /healthz and /metrics (METRICS_HOST:METRICS_PORT); null in a supervised worker child. */
  http: HealthServer | null;
  stop(): Promise<void>;
}

/** `all` = bot + workers in one process; `bot` and `worker` run them apart so workers scale out on more hosts. */
export async function startService(
  config: Config,
  log: Logger,
  mode: Extract<Mode, 'all' | 'bot' | 'worker'>,
  overrides: DepsOverrides & {
    workerOptions?: WorkerOptions;
    /** A supervised worker child serves no /healthz of its own: its parent answers for it (worker-supervisor.ts). */
    serveHttp?: boolean;
    /** `all` with its workers in a child process: its health (part of this process's /healthz) and /metrics. */
    workerChild?: Pick<WorkerSupervisor, 'healthy' | 'usage' | 'restarts'>;
  } = {},
): Promise<Service> {
  const deps = await createDeps(config, log, overrides);
  let workers: Workers | null = null;
  let slack: SlackApp | null = null;
  let http: HealthServer | null = null;
  let presence: { stop(): Promise<void> } | null = null;
  let watch: { stop(): void } | null = null;
  try {
    if (mode !== 'bot') workers = await startWorkers(deps, overrides.workerOptions);
    const running = workers;
    // Workers say they run; the Slack side pages when none has for 5 minutes (worker-presence.ts).
    const prefix = config.queuePrefix;
    if (running) presence = startPresence({ redis: deps.redis, prefix, running: () => running.running(), log });
    if (mode !== 'worker') {
      const pager = createWorkerPager({ ...deps, prefix, client: deps.pagerDuty, log, condition: 'workers' });
      const workersWatch = watchWorkers({ redis: deps.redis, prefix, pager, announce: (text) => deps.notifier.post({ text }), log });
      // Redis itself: an outage stops everything and every page, so it is said and paged around Redis (redis-watch.ts).
      const marker = redisPageMarker(config.redisUrl, prefix);
      const redisWatch = watchRedis({ ping: () => deps.redis.ping(), notifier: deps.notifier, pagerDuty: deps.pagerDuty, log, marker });
      watch = {
        stop: () => {
          workersWatch.stop();
          redisWatch.stop();
        },
      };
    }
    // Ready once everything this process serves is up: a deploy's probe must not send Slack to a port not open yet.
    let slackUp = mode === 'worker';
    const [{ startHealthServer }, { renderMetrics }] = await Promise.all([import('./health/http.ts'), import('./health/scrape.ts')]);
    const supervised = overrides.workerChild;
    const child = () => supervised?.healthy() ?? true;
    if (supervised) {
      // Prometheus sees the worker child too: /metrics answers while the child is dead, so `up` alone would not.
      const { registerWorkerProcessGauge } = await import('./health/index.ts');
      registerWorkerProcessGauge(deps.metrics.registry, supervised);
    }
    if (overrides.serveHttp !== false)
      http = await startHealthServer({
        ...config.metrics,
        // Healthy = Slack is served (where this process serves it), Redis answers and every worker is running: this
        // process's, or those of the worker child it supervises (`all`).
        healthy: async () => slackUp && child() && (await deps.redis.ping()) === 'PONG' && (running === null || running.running()),
        metrics: () => renderMetrics(deps),
        log,
      });
    if (mode !== 'worker') {
      // Loaded only where Slack is served: a `worker` process never loads Bolt, its HTTP server and Socket Mode
      // client (about 300 files and 25 MiB of a worker's resident memory).
      const [{ startSlackApp }, { actionTable, buttonTable, checkboxTable, commandDepsFrom, commandTable }] = await Promise.all([
        import('./slack-app.ts'),
        import('./commands/index.ts'),
      ]);
      const commandDeps = commandDepsFrom(deps);
      slack = await startSlackApp({
        config,
        log,
        handlers: commandTable(commandDeps),
        actions: actionTable(commandDeps),
        checkboxes: checkboxTable(commandDeps),
        buttons: buttonTable(commandDeps),
        home: {
          deps: { config, storage: deps.storage, queue: deps.queues.backup, runs: deps.runs },
          redis: deps.redis,
          queuePrefix: config.queuePrefix,
          log,
        },
      });
      slackUp = true;
    }
  } catch (err) {
    watch?.stop();
    await presence?.stop();
    await http?.stop();
    await workers?.close();
    await deps.close();
    throw err;
  }
  const served = http;
  let stopping: Promise<void> | undefined;
  return {
    deps,
    slack,
    workers,
    http: served,
    stop() {
      stopping ??= (async () => {
        watch?.stop();
        await slack?.stop();
        await served?.stop();
        await presence?.stop();
        await workers?.close();
        await deps.close();
      })();
      return stopping;
    },
  };
}
