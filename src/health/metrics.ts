import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { type Manifest, totalBytes } from '../storage/index.ts';
import type { BackupRunSummary, ConditionResult, RestoreTestSummary } from './types.ts';
import { createWalMetrics } from './wal-metrics.ts';
import type { WalHealthFacts } from './wal-types.ts';

export type QueueState = 'waiting' | 'active' | 'failed' | 'delayed';
export const QUEUE_STATES: readonly QueueState[] = ['waiting', 'active', 'failed', 'delayed'];

export interface TargetMetricsInput {
  /** Finished backups of the target, any order. */
  backups: Manifest[];
  /** Not exported as its own series: its verdict is `pgbb_condition_failing{condition="backup-failing"}`. */
  lastBackupRun: BackupRunSummary | null;
  lastRestoreTest: RestoreTestSummary | null;
  results: ConditionResult[];
  /** Queue name → job counts. Queues are shared by all targets, so any one update may carry them. */
  queueDepths?: Record<string, Record<QueueState, number>>;
  /** A target with point-in-time recovery: its RPO objective (`pitr.rpoSeconds`); the RPO is the `rpo` condition's value. */
  rpoObjectiveSeconds?: number;
  /** The scrape's time, for the ages (default: now). */
  now?: Date;
  /** A point-in-time-recovery target's archive and slot (wal-metrics.ts); absent for other targets. */
  walHealth?: WalHealthFacts;
}

export interface HealthMetrics {
  /** A registry of our own: tests and several bots in one process never collide on the global default one. */
  registry: Registry;
  update(target: string, input: TargetMetricsInput): void;
  recordBackupFailure(target: string): void;
  /** Whether this scrape could judge the target (`pgbb_condition_failing{condition="unchecked"}`). */
  setUnchecked(target: string, unchecked: boolean): void;
  /** Channel posts Slack refused so far, per answer, as Redis counts them (notifications/slack-failures.ts): what their sum grew by. */
  setSlackFailures(counts: Record<string, number>): void;
}

/**
 * Prometheus gauges for `GET /metrics`. Values are set from the same inputs the health check reads, so a
 * dashboard and a page never disagree. Default process metrics are included unless `defaultMetrics: false`:
 * they cost a few syscalls per scrape plus one GC observer and one event-loop histogram per call.
 */
export function createMetrics(options: { defaultMetrics?: boolean } = {}): HealthMetrics {
  const registry = new Registry();
  const registers = [registry];
  const target = ['target'] as const;
  const lastGood = new Gauge({
    name: 'pgbb_last_good_backup_timestamp_seconds',
    help: 'Start (snapshot) time of the newest finished backup, Unix seconds',
    labelNames: target,
    registers,
  });
  // Ages beside the timestamps: an agent without time() (Datadog's, say) can alert on them as they are.
  const lastGoodAge = new Gauge({
    name: 'pgbb_last_good_backup_age_seconds',
    help: 'Seconds since the start (snapshot) of the newest finished backup',
    labelNames: target,
    registers,
  });
  const duration = new Gauge({ name: 'pgbb_last_backup_duration_seconds', help: 'Duration of the newest finished backup', labelNames: target, registers });
  const size = new Gauge({
    name: 'pgbb_last_backup_size_bytes',
    help: 'Bytes stored for the newest finished backup, all artifacts',
    labelNames: target,
    registers,
  });
  const failures = new Counter({ name: 'pgbb_backup_failures_total', help: 'Backup runs that failed', labelNames: target, registers });
  const restorePassed = new Gauge({
    name: 'pgbb_restore_test_passed',
    help: '1 if the last restore test passed, 0 if it failed',
    labelNames: target,
    registers,
  });
  const restoreDuration = new Gauge({
    name: 'pgbb_restore_test_duration_seconds',
    help: 'Restore time (RTO) of the last restore test',
    labelNames: target,
    registers,
  });
  const restoreAt = new Gauge({
    name: 'pgbb_last_restore_test_timestamp_seconds',
    help: 'When the last restore test ran (passed or not), Unix seconds',
    labelNames: target,
    registers,
  });
  const restoreAge = new Gauge({
    name: 'pgbb_last_restore_test_age_seconds',
    help: 'Seconds since the last restore test ran (passed or not)',
    labelNames: target,
    registers,
  });
  const failing = new Gauge({
    name: 'pgbb_condition_failing',
    help: '1 while a health condition is failing, else 0',
    labelNames: ['target', 'condition'] as const,
    registers,
  });
  const rpo = new Gauge({
    name: 'pgbb_wal_rpo_seconds',
    help: 'Measured RPO: seconds since the oldest committed WAL not yet in the archive was written (0: the archive holds everything); no series while unknown',
    labelNames: target,
    registers,
  });
  const rpoObjective = new Gauge({ name: 'pgbb_wal_rpo_objective_seconds', help: 'The RPO objective (pitr.rpoSeconds)', labelNames: target, registers });
  // The count only: rows per table per backup would be a series per table (cardinality); /backup diff has them.
  const driftTables = new Gauge({
    name: 'pgbb_data_drift_tables',
    help: 'Tables of the newest backup in data drift against the one before it (lost rows, emptied, dropped)',
    labelNames: target,
    registers,
  });
  const queueJobs = new Gauge({ name: 'pgbb_queue_jobs', help: 'BullMQ jobs per queue and state', labelNames: ['queue', 'state'] as const, registers });
  const wal = createWalMetrics(registers);
  // One series, from 0 at this process's first scrape and raised by what Redis's count grew since (never set back:
  // a count lost with Redis would read as a counter reset, and increase() as a burst). Every instance exports the
  // same count: the rule takes the max over instances. Slack's answer is in the page and the logs.
  const slackFailed = new Counter({
    name: 'pgbb_slack_post_failures_total',
    help: "Channel posts, updates and thread replies Slack refused or did not answer (every process's, as counted in Redis) since this process's first scrape",
    registers,
  });
  let slackSeen: number | null = null;
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });

  return {
    registry,
    update(name, input) {
      const labels = { target: name };
      const now = (input.now ?? new Date()).getTime() / 1000;
      // Counters start at 0 so rate() and increase() see the first failure of a target.
      failures.inc(labels, 0);
      const newest = input.backups.reduce<Manifest | undefined>((a, b) => (!a || Date.parse(b.startedAt) > Date.parse(a.startedAt) ? b : a), undefined);
      if (newest) {
        lastGood.set(labels, Date.parse(newest.startedAt) / 1000);
        lastGoodAge.set(labels, Math.max(0, now - Date.parse(newest.startedAt) / 1000));
        duration.set(labels, newest.durationMs / 1000);
        size.set(labels, totalBytes(newest));
      } else {
        // No series rather than 0: a timestamp of 0 would read as "last backup in 1970".
        lastGood.remove(labels);
        lastGoodAge.remove(labels);
        duration.remove(labels);
        size.remove(labels);
      }
      const test = input.lastRestoreTest;
      if (test) {
        restorePassed.set(labels, test.passed ? 1 : 0);
        restoreAt.set(labels, test.at.getTime() / 1000);
        restoreAge.set(labels, Math.max(0, now - test.at.getTime() / 1000));
      } else {
        for (const g of [restorePassed, restoreAt, restoreAge]) g.remove(labels);
      }
      if (input.lastRestoreTest?.durationMs !== undefined) restoreDuration.set(labels, input.lastRestoreTest.durationMs / 1000);
      else restoreDuration.remove(labels);
      wal.update(name, input.walHealth);
      // No series while unknown, never 0: 0 would say the archive holds everything.
      const measured = input.results.find((r) => r.condition === 'rpo')?.value;
      if (measured !== undefined) rpo.set(labels, measured);
      else rpo.remove(labels);
      if (input.rpoObjectiveSeconds !== undefined) rpoObjective.set(labels, input.rpoObjectiveSeconds);
      else rpoObjective.remove(labels);
      const drift = input.results.find((r) => r.condition === 'data-drift')?.value;
      if (drift !== undefined) driftTables.set(labels, drift);
      else driftTables.remove(labels);
      for (const r of input.results) failing.set({ target: name, condition: r.condition }, r.status === 'failing' ? 1 : 0);
      for (const [queue, depths] of Object.entries(input.queueDepths ?? {})) {
        for (const state of QUEUE_STATES) queueJobs.set({ queue, state }, depths[state]);
      }
    },
    recordBackupFailure(name) {
      failures.inc({ target: name });
    },
    setUnchecked(name, unchecked) {
      failing.set({ target: name, condition: 'unchecked' }, unchecked ? 1 : 0);
    },
    setSlackFailures(counts) {
      const total = Object.values(counts).reduce((a, b) => a + b, 0);
      if (slackSeen !== null && total > slackSeen) slackFailed.inc(total - slackSeen);
      slackSeen = total;
    },
  };
}

/** What `all`'s worker child reports of itself with each heartbeat (worker-supervisor.ts). */
export interface WorkerChildUsage {
  rssBytes: number;
  heapUsedBytes: number;
  cpuSeconds: number;
}

/**
 * `all`'s worker child on the parent's /metrics: whether it is up, its deaths since the parent started, and its own
 * memory and CPU as it last reported them (Node's process metrics above are the Slack side's alone).
 */
export function registerWorkerProcessGauge(
  registry: Registry,
  child: { healthy: () => boolean; usage?: () => WorkerChildUsage | null; restarts?: () => number },
): void {
  new Gauge({
    name: 'pgbb_worker_process_up',
    help: "1 while npm start's worker child runs and its heartbeat is fresh, else 0",
    registers: [registry],
    collect() {
      this.set(child.healthy() ? 1 : 0);
    },
  });
  new Counter({
    name: 'pgbb_worker_process_restarts_total',
    help: "Deaths of npm start's worker child since this process started (each is followed by a restart)",
    registers: [registry],
    collect() {
      this.reset();
      this.inc(child.restarts?.() ?? 0);
    },
  });
  const reported = (name: string, help: string, pick: (u: WorkerChildUsage) => number) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        const u = child.usage?.();
        this.reset();
        if (u) this.set(pick(u));
      },
    });
  reported('pgbb_worker_process_resident_memory_bytes', "Resident memory of npm start's worker child, as it last reported", (u) => u.rssBytes);
  reported('pgbb_worker_process_heap_used_bytes', "V8 heap in use in npm start's worker child, as it last reported", (u) => u.heapUsedBytes);
  reported('pgbb_worker_process_cpu_seconds', "CPU time (user + system) of npm start's worker child since its start, as it last reported", (u) => u.cpuSeconds);
}
