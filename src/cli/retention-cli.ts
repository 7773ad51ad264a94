import { createAuditLog, retentionDeletion } from '../audit.ts';
import { copyScrubState, redisScrubState, rememberedReadBack } from '../storage/scrub.ts';
import type { Config } from '../config.ts';
import { toUserMessage } from '../errors.ts';
import { backupsInUse } from '../jobs/backups-in-use.ts';
import type { Logger } from '../logger.ts';
import { retentionRunReport, retentionSummary } from '../notifications/retention-messages.ts';
import { pitrRetentionFailed, pitrRetentionReport } from '../notifications/pitr-retention-messages.ts';
import { pitrAuditResult, pitrRetentionTargets, runPitrRetention } from '../postgres/pitr/pitr-retention.ts';
import { runRetention, type BackupsInUse } from '../storage/index.ts';
import type { Storage } from '../storage/index.ts';
import type { CliIo } from './backup-cli.ts';
import { inUseQueues } from './cli-queues.ts';
import { connectRedis } from './cli-redis.ts';
import { recordCliRetention } from '../checklists/retention-runs.ts';
import { hostname } from 'node:os';
import { repairClaim } from '../jobs/redis-lock.ts';

const USAGE = 'usage: pg-backup-bot retention [--dry-run]';
const NOTHING_KNOWN: BackupsInUse = { restoreTests: new Set(), restores: new Set(), runningBackups: [] };

export interface RetentionCliDeps {
  config: Config;
  /** REDIS_URL when it is set; null when it is not (cli-redis.ts: no default Redis is asked). */
  redisUrl: string | null;
  primary: Storage;
  copies: readonly Storage[];
  log: Logger;
  io: CliIo;
  /** Ctrl-C, SIGTERM: the run stops between two deletions and says what it did (main.ts cancelOnSignals). */
  signal?: AbortSignal;
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
  const redis = deps.redisUrl === null ? null : await connectRedis(deps.redisUrl, deps.config.redisCluster);
  const why = deps.redisUrl === null ? 'no REDIS_URL' : 'Redis at REDIS_URL does not answer';
  if (!redis && !dryRun) {
    io.err(
      `Refusing to delete: ${why}, so the restore tests running now cannot be seen` +
        `${deps.redisUrl === null ? "; set REDIS_URL to the bot's Redis" : ''}. \`pg-backup-bot retention --dry-run\` shows what would be deleted.`,
    );
    return 1;
  }
  if (!redis) io.err(`${why}: restore tests and backups running now are unknown, so a real run would refuse.`);
  const queues = redis ? inUseQueues(redis, config.queuePrefix) : null;
  const audit = createAuditLog(config.backupDir, deps.log.child({ component: 'audit' }), { createDir: false });
  const by = { jobId: null, userName: process.env.USER ?? process.env.LOGNAME ?? null };
  const startedAt = new Date();
  // The run as the weekly checklist reads it (checklists/retention-runs.ts), when there is Redis to keep it in.
  const record = (summary: Parameters<typeof recordCliRetention>[2]['summary'], problem: string | null) =>
    // A dry run applies nothing: it is not the checklist's "retention applied" (second reader: it hid a good run).
    redis && !dryRun
      ? recordCliRetention(redis, config.queuePrefix, { startedAt, finishedAt: new Date(), summary, problem }).catch(() => undefined)
      : Promise.resolve();
  try {
    const run = await runRetention({
      primary: deps.primary,
      copies: deps.copies,
      dryRun,
      timezone: config.timezone,
      ...(deps.signal ? { signal: deps.signal } : {}),
      ...(redis ? { claimRepair: repairClaim(redis, config.queuePrefix, `cli:${hostname()}:${process.pid}:retention`) } : {}),
      inUse: () => (queues && redis ? backupsInUse(queues, { redis, prefix: config.queuePrefix }) : Promise.resolve(NOTHING_KNOWN)),
      log: deps.log,
      readBack: rememberedReadBack((s) =>
        redis ? (s === deps.primary ? redisScrubState(redis, config.queuePrefix) : copyScrubState(redis, config.queuePrefix, s)) : undefined,
      ),
      onOutcome: (o) =>
        audit.append(retentionDeletion(`cli ${o.storage} ${o.backupId}`, o.error === null ? `deleted: ${o.reason}` : `delete failed: ${o.error}`, by)),
    });
    io.out(retentionRunReport(run));
    if (run.canceled || deps.signal?.aborted) {
      // Stopped between two deletions: what is said above was done; the rest (and the PITR archive's) waits.
      const sum = retentionSummary(run);
      const done = `${sum.deleted + sum.cleaned} deletion${sum.deleted + sum.cleaned === 1 ? '' : 's'} done`;
      if (dryRun) io.err('Retention dry run canceled: the report above is partial; nothing was deleted.');
      else io.err(`Retention canceled: ${done}, the rest not tried (the next run does it); nothing is left half-deleted.`);
      // Not recorded: a run someone stopped is neither retention applied nor retention failing (second reader: it was
      // recorded as failed, and the weekly checklist then flagged retention that the scheduled runs applied).
      return 1;
    }
    // Point-in-time recovery's base backups and WAL (targets with a `pitr` section): their window before and after.
    const pitr = await runPitrRetention({
      root: config.backupDir,
      targets: pitrRetentionTargets(config),
      offsite: config,
      dryRun,
      log: deps.log,
      onOutcome: (o) => audit.append(retentionDeletion(`cli pitr ${o.target} ${o.what} ${o.name}`, pitrAuditResult(o), by)),
    });
    if (pitr.targets.length) io.out(pitrRetentionReport(pitr, config.timezone));
    const sum = retentionSummary(run);
    const unreadable = sum.unreadable.length ? `could not read ${sum.unreadable.join(', ')}` : null;
    await record(sum, unreadable ?? (pitrRetentionFailed(pitr) ? 'the point-in-time archive’s retention failed' : null));
    return sum.failed > 0 || sum.unreadable.length > 0 || pitrRetentionFailed(pitr) ? 1 : 0;
  } catch (err) {
    await record({}, `did not run: ${toUserMessage(err)}`);
    io.err(`Retention did not run, nothing was deleted: ${toUserMessage(err)}`);
    deps.log.debug({ err }, 'retention failed');
    return 1;
  } finally {
    await queues?.close();
    redis?.disconnect();
  }
}
