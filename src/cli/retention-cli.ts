import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { createAuditLog } from '../audit.ts';
import type { Config } from '../config.ts';
import { toUserMessage } from '../errors.ts';
import { backupsInUse } from '../jobs/backups-in-use.ts';
import { QUEUE, type BackupJobData, type RestoreJobData, type RestoreTestJobData } from '../jobs/queues.ts';
import type { Logger } from '../logger.ts';
import { retentionRunReport, retentionSummary } from '../notifications/retention-messages.ts';
import { runRetention, type BackupsInUse } from '../storage/index.ts';
import type { Storage } from '../storage/index.ts';
import type { CliIo } from './backup-cli.ts';

const USAGE = 'usage: pg-backup-bot retention [--dry-run]';
const NOTHING_KNOWN: BackupsInUse = { restoreTests: new Set(), restores: new Set(), runningBackups: [] };

export interface RetentionCliDeps {
  config: Config;
  primary: Storage;
  copies: readonly Storage[];
  log: Logger;
  io: CliIo;
}

/** Redis the way `check` asks it: one quick try, no retries, no queueing while it is down. */
async function connectRedis(url: string): Promise<Redis | null> {
  const redis = new Redis(url, { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, connectTimeout: 3000, retryStrategy: () => null });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    return redis;
  } catch {
    redis.disconnect();
    return null;
  }
}

/**
 * `pg-backup-bot retention [--dry-run]`: the daily retention job, in the foreground, without Slack. It asks Redis
 * which backups restore tests and restores are reading; when Redis does not answer it cannot know, so it refuses to
 * delete (a dry run still reports). Exit 0 when all went well, 1 when a deletion failed or nothing could be done.
 */
export async function cliRetention(args: string[], deps: RetentionCliDeps): Promise<number> {
  const { io, config } = deps;
  if (args.some((a) => a !== '--dry-run')) {
    io.err(USAGE);
    return 2;
  }
  const dryRun = args.includes('--dry-run');
  const redis = await connectRedis(config.redisUrl);
  if (!redis && !dryRun) {
    io.err(
      `Refusing to delete: Redis at REDIS_URL does not answer, so the restore tests running now cannot be seen. ` +
        '`pg-backup-bot retention --dry-run` shows what would be deleted.',
    );
    return 1;
  }
  if (!redis) io.err(`Redis at REDIS_URL does not answer: restore tests and backups running now are unknown, so a real run would refuse.`);
  const opts = { connection: redis as Redis, prefix: config.queuePrefix };
  const queues = redis
    ? {
        backup: new Queue<BackupJobData>(QUEUE.backup, opts),
        restoreTest: new Queue<RestoreTestJobData>(QUEUE.restoreTest, opts),
        restore: new Queue<RestoreJobData>(QUEUE.restore, opts),
      }
    : null;
  const audit = createAuditLog(config.backupDir, deps.log.child({ component: 'audit' }));
  const user = process.env.USER ?? process.env.LOGNAME ?? null;
  try {
    const run = await runRetention({
      primary: deps.primary,
      copies: deps.copies,
      dryRun,
      inUse: () => (queues ? backupsInUse(queues) : Promise.resolve(NOTHING_KNOWN)),
      log: deps.log,
      onOutcome: (o) =>
        audit.append({
          kind: 'job',
          userId: null,
          userName: user,
          what: 'retention',
          args: `cli ${o.storage} ${o.backupId}`,
          decision: 'n/a',
          role: null,
          jobId: null,
          result: o.error === null ? `deleted: ${o.reason}` : `delete failed: ${o.error}`,
        }),
    });
    io.out(retentionRunReport(run));
    const sum = retentionSummary(run);
    return sum.failed > 0 || sum.unreadable.length > 0 ? 1 : 0;
  } catch (err) {
    io.err(`Retention did not run, nothing was deleted: ${toUserMessage(err)}`);
    deps.log.debug({ err }, 'retention failed');
    return 1;
  } finally {
    if (queues) await Promise.allSettled([queues.backup.close(), queues.restoreTest.close(), queues.restore.close()]);
    redis?.disconnect();
  }
}
