import { BotError } from '../errors.ts';
import { holdForCli } from '../jobs/cli-readers.ts';
import { connectRedis } from './cli-redis.ts';
import type { Config } from '../config.ts';
import { type Storage, targetOfBackupId } from '../storage/index.ts';

/**
 * The backup a CLI `restore-test` or `restore` reads, held against retention in the bot's Redis (REDIS_URL set;
 * jobs/cli-readers.ts), or null, said: a retention run beside it cannot see it then (QA: deleted under a CLI restore
 * test, which then recorded PASSED for a backup that was gone). Re-checked once held: one deleted just before is
 * said now, not found halfway through.
 */
export async function holdForReading(
  deps: {
    redisUrl?: string | null | undefined;
    config: Pick<Config, 'redisCluster' | 'queuePrefix'>;
    io: { err(line: string): void };
    storage: Pick<Storage, 'list'>;
  },
  backupId: string,
  retainUntil: string | null,
  what: 'test' | 'restore',
  /** A restore test's scratch database (jobs/cli-readers.ts): no worker that starts meanwhile drops it. */
  scratch?: string,
): Promise<{ release(): Promise<void> } | null> {
  const redis = deps.redisUrl ? await connectRedis(deps.redisUrl, deps.config.redisCluster) : null;
  if (!redis) {
    // Said only of a backup retention may delete within a day: of any other it is noise.
    if (retainUntil !== null && Date.parse(retainUntil) < Date.now() + 24 * 3_600_000)
      deps.io.err(
        `note: ${deps.redisUrl ? 'Redis at REDIS_URL does not answer' : 'no REDIS_URL'}: a retention run meanwhile cannot see this ${what}, and may delete ${backupId} if it is past its deadline.`,
      );
    return null;
  }
  const lost = (why: string) =>
    deps.io.err(`warning: the hold on ${backupId} in Redis could not be renewed (${why}): a retention run may delete it under this ${what}.`);
  const held = await holdForCli(redis, deps.config.queuePrefix, backupId, lost, scratch).catch((err: unknown) => {
    deps.io.err(
      `note: ${backupId} could not be held against retention in Redis (${(err as Error).message}): a retention run meanwhile cannot see this ${what}.`,
    );
    return null;
  });
  if (!held) {
    redis.disconnect();
    return null;
  }
  const release = () => held.release().finally(() => redis.disconnect());
  const still = await deps.storage.list(targetOfBackupId(backupId) ?? undefined).then(
    (l) => l.some((m) => m.backupId === backupId),
    () => true,
  );
  if (!still) {
    await release();
    throw new BotError('backup_not_found', `Backup ${backupId} was deleted (by retention?) just before the ${what} could hold it; nothing was done.`);
  }
  return { release };
}
