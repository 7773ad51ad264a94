import type { Config } from './config.ts';
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

/** A backup lock's holder in words: a worker's job, or a `pg-backup-bot backup` in a terminal (`cli:host:pid`). */
const holderText = (holder: string) => (holder.startsWith('cli:') ? `\`pg-backup-bot backup\` on ${holder.slice(4)}` : `job \`${holder}\``);

/**
 * Around a replacement's swap (the restore worker): no backup of the database replaced starts during it, and one
 * running when it begins, which the swap ends, runs again on the restored database (a worker's) or says why it
 * stopped (the CLI's), instead of failing with "connection lost" and paging (jobs/replacement-marks.ts).
 */
export function swapBeside(
  marks: Marks | undefined,
  config: Config,
  data: { into: { database: string }; confirmedBy: string | null },
  jobId: string,
  serverUrl: string,
): AroundSwap | undefined {
  if (!marks) return undefined;
  const targets = targetsOf(config, serverUrl, data.into.database);
  return async (keptAs) => {
    const ended = { restoreJobId: jobId, database: data.into.database, keptAs, confirmedBy: data.confirmedBy, at: new Date().toISOString() };
    const around = await aroundSwap(marks.redis, marks.prefix, targets, ended);
    const notes = around.ended.map(
      ({ target, holder }) =>
        `A backup of ${target} was running at the swap (${holderText(holder)}): the swap ended it, unless it had just finished; ${holder.startsWith('cli:') ? 'it says so where it runs' : 'it runs again on the restored database'}, and pages nobody.`,
    );
    if (around.failed)
      notes.push(`Backups of ${data.into.database} could not be held off during the swap (Redis: ${around.failed}): one it ended fails as a lost connection.`);
    return { release: around.release, notes };
  };
}

/** For the confirmation: the backups of this database running now; '' when none (or Redis cannot say). */
export async function backupsTheSwapEnds(marks: Marks, config: Config, serverUrl: string, database: string): Promise<string> {
  const running: string[] = [];
  for (const target of targetsOf(config, serverUrl, database)) {
    const holder = await marks.redis.get(backupLockKey(marks.prefix, target)).catch(() => null);
    if (holder) running.push(`${target} (${holderText(holder)})`);
  }
  if (running.length === 0) return '';
  return ` A backup of ${running.join(', ')} is running now. If it still is when the swap comes (after the restore and its checks), the swap ends it and it runs again on the restored database; nobody is paged.`;
}
