import type { Config } from './config.ts';
import type { RestoreJobData } from './jobs/queues.ts';
import { aroundSwap } from './jobs/replacement-marks.ts';
import { backupLockKey } from './jobs/redis-lock.ts';
import { parsePgUrl, serverLabel } from './postgres/index.ts';
import type { RedisConnection } from './redis-client.ts';
import type { AroundSwap } from './workers/full-restore.ts';

type Marks = { redis: RedisConnection; prefix: string };

/** The targets whose database is this one (on its server, by name): what a replacement of it swaps out from under. */
function targetsOf(config: Config, serverUrl: string, database: string): string[] {
  const server = serverLabel(serverUrl);
  return config.targets.filter((t) => serverLabel(t.url) === server && parsePgUrl(t.url).env.PGDATABASE === database).map((t) => t.name);
}

/**
 * Around a replacement's swap (the restore worker): a backup of the database replaced that is running is ended by
 * the swap and said so when it fails, not paged (jobs/replacement-marks.ts); none starts during it.
 */
export function swapBeside(marks: Marks | undefined, config: Config, data: RestoreJobData, jobId: string, serverUrl: string): AroundSwap | undefined {
  if (!marks) return undefined;
  const targets = targetsOf(config, serverUrl, data.into.database);
  return async () => {
    const ended = { restoreJobId: jobId, database: data.into.database, confirmedBy: data.confirmedBy, at: new Date().toISOString() };
    const around = await aroundSwap(marks.redis, marks.prefix, targets, ended);
    const notes = around.ended.map(
      ({ target, holder }) =>
        `The backup of ${target} that was running (${holder}) was ended by the swap: it is said so, not paged; the next backup of ${target} is of the restored database.`,
    );
    return { release: around.release, notes };
  };
}

/** For the confirmation: the backups of this database running now, which the swap would end; '' when none (or Redis cannot say). */
export async function backupsTheSwapEnds(marks: Marks, config: Config, serverUrl: string, database: string): Promise<string> {
  const running: string[] = [];
  for (const target of targetsOf(config, serverUrl, database)) {
    const holder = await marks.redis.get(backupLockKey(marks.prefix, target)).catch(() => null);
    if (holder) running.push(`${target} (job \`${holder}\`)`);
  }
  if (running.length === 0) return '';
  return ` A backup of ${running.join(', ')} is running now: the swap ends it (said so in its message, not paged), unless it finishes first.`;
}
