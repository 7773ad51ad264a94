import type { Config } from '../config.ts';
import { findTarget } from '../config.ts';
import { toUserMessage } from '../errors.ts';
import { backupDiskCondition, checkTarget, diskSubject, healthSources, inputDiskNeed, resolveThresholds } from '../health/index.ts';
import { createRunLog } from '../health/index.ts';
import { nagiosReport } from '../health/index.ts';
import { QUEUE, type BackupJobData } from '../jobs/queues.ts';
import type { Storage } from '../storage/index.ts';
import type { CliIo } from './backup-cli.ts';
import { readOnlyQueue } from './cli-queues.ts';
import { connectRedis } from './cli-redis.ts';
import type { RedisConnection } from '../redis-client.ts';
import { missingBackupDir } from './backup-dir.ts';

/**
 * `pg-backup-bot check [target]`: the health conditions as a Nagios plugin — one line per condition, exit 0 OK,
 * 1 warning, 2 critical. Without Redis it still judges everything storage shows, and says what it could not see.
 */
export async function cliCheck(args: string[], deps: { config: Config; redisUrl: string | null; storage: Storage; io: CliIo }): Promise<number> {
  const { io, config } = deps;
  if (args.length > 1) {
    io.err('usage: pg-backup-bot check [target]');
    return 3; // Nagios UNKNOWN
  }
  // Without REDIS_URL, by choice: said on stderr, and not a warning. Set but not answering: a warning.
  if (deps.redisUrl === null)
    io.err("no REDIS_URL: judging from storage alone; the last backup run and running jobs are not checked (set REDIS_URL to the bot's Redis)");
  const redis = deps.redisUrl === null ? null : await connectRedis(deps.redisUrl, deps.config.redisCluster);
  const extra: string[] =
    redis || deps.redisUrl === null ? [] : ['WARNING redis: cannot reach Redis at REDIS_URL; the last backup run and running jobs are unknown'];
  // Judged against a directory that is not there, every condition would read as a target never backed up.
  const noDir = await missingBackupDir(config);
  const queue = redis ? readOnlyQueue<BackupJobData>(QUEUE.backup, redis, config.queuePrefix) : null;
  try {
    const targets = args[0] ? [findTarget(config, args[0])] : config.targets;
    // A Redis that answers but holds nothing of a bot under this prefix: every run-based verdict would read "no run
    // recorded", and OK (QA: QUEUE_PREFIX unset while the bot used another, and check said OK as backups failed).
    if (
      redis &&
      !(await botUsed(
        redis,
        config.queuePrefix,
        targets.map((t) => t.name),
      ))
    )
      extra.push(
        `UNKNOWN redis: the Redis at REDIS_URL holds nothing of a bot under QUEUE_PREFIX ${config.queuePrefix} (no queue, no schedule, no run recorded), so the last backup runs cannot be judged; set QUEUE_PREFIX to the bot's`,
      );
    const sources = healthSources(config, { storage: deps.storage, runs: redis ? createRunLog(redis, config.queuePrefix) : null, backupQueue: queue });
    const now = new Date();
    const checked = await Promise.all(targets.map(async (t) => ({ target: t.name, ...(await checkTarget(sources, t.name, now)) })));
    const perTarget = checked.map(({ target, results }) => ({ target, results }));
    // Every target at once: the backup disk they share is one line, judged for all of them as the workers page it
    // (one page per storage), not a line per target (20 CRITICAL lines for one full disk).
    if (checked.length > 1) {
      for (const t of perTarget) t.results = t.results.filter((r) => r.condition !== 'disk');
      const disk = deps.storage.freeSpace ? await deps.storage.freeSpace().catch(() => null) : null;
      const needs = checked.map((c) => inputDiskNeed(c.input));
      perTarget.push({
        target: diskSubject(deps.storage),
        results: [backupDiskCondition(diskSubject(deps.storage), disk, resolveThresholds(config.health.thresholds), needs)],
      });
    }
    const report = nagiosReport(perTarget);
    // The cause first: Nagios shows the first line.
    const unknownLines = extra.filter((l) => l.startsWith('UNKNOWN'));
    const rest = extra.filter((l) => !l.startsWith('UNKNOWN'));
    for (const line of [...(noDir ? [`CRITICAL storage: ${noDir}`] : []), ...unknownLines, ...report.lines, ...rest]) io.out(line);
    const unknown = unknownLines.length > 0;
    const worst = Math.max(report.exitCode, noDir ? 2 : extra.length > 0 ? 1 : 0);
    // CRITICAL stays CRITICAL; anything less is UNKNOWN when the runs could not be read.
    return unknown && worst < 2 ? 3 : worst;
  } catch (err) {
    io.out(`UNKNOWN check: ${toUserMessage(err)}`);
    return 3;
  } finally {
    await queue?.close();
    redis?.disconnect();
  }
}

/** Whether a bot has used `prefix` in this Redis: its backup queue's meta, its health schedule, or a run of a target. */
async function botUsed(redis: RedisConnection, prefix: string, targets: string[]): Promise<boolean> {
  const keys = [`${prefix}:backup:meta`, `${prefix}:health:repeat`, ...targets.map((t) => `${prefix}:last-run:backup:${t}`)];
  // One EXISTS each: on a Redis Cluster they would all share the prefix's slot, but nothing here relies on it.
  return (await Promise.all(keys.map((k) => redis.exists(k)))).some((n: number) => n > 0);
}
