import type { Config } from '../config.ts';
import { toUserMessage } from '../errors.ts';
import { formatBytes } from '../format.ts';
import type { Logger } from '../logger.ts';
import type { Storage } from '../storage/index.ts';
import { memoryScrubState, redisScrubState, scrubBackups } from '../storage/scrub.ts';
import type { CliIo } from './backup-cli.ts';
import { connectRedis } from './cli-redis.ts';

const USAGE = 'usage: pg-backup-bot scrub [--all]';

/**
 * `pg-backup-bot scrub [--all]`: the checksum scrub the worker runs after each retention run (storage/scrub.ts), now
 * and in the foreground: for when the disk or the bucket is suspect. Without `--all` it reads what the next daily run
 * would (a seventh of what is stored, longest unread first); with it, every backup. A backup found damaged is marked
 * as the worker marks it. With REDIS_URL it shares the worker's memory of what was read when. Exit 0 when everything
 * read matched, 1 when a backup is damaged or could not be read.
 */
export async function cliScrub(args: string[], deps: { config: Config; redisUrl: string | null; storage: Storage; log: Logger; io: CliIo }): Promise<number> {
  const { io } = deps;
  if (args.some((a) => a !== '--all')) {
    io.err(USAGE);
    return 2;
  }
  const redis = deps.redisUrl === null ? null : await connectRedis(deps.redisUrl, deps.config.redisCluster);
  if (deps.redisUrl !== null && !redis) io.err('Redis at REDIS_URL does not answer: reading without the worker’s memory of what was read when.');
  try {
    const state = redis ? redisScrubState(redis, deps.config.queuePrefix) : memoryScrubState();
    const r = await scrubBackups({ storage: deps.storage, state, now: new Date(), log: deps.log, all: args.includes('--all') });
    for (const d of r.damaged) io.out(`DAMAGED ${d.backupId}: ${d.why}`);
    for (const d of r.unreadable) io.out(`UNREADABLE ${d.backupId}: ${d.why}`);
    io.out(
      `Read back ${r.verified + r.damaged.length} of ${r.stored} stored backups on ${deps.storage.describe()} (${formatBytes(r.verifiedBytes)} matching): ` +
        `${r.damaged.length} damaged, ${r.unreadable.length} unreadable.`,
    );
    return r.damaged.length > 0 || r.unreadable.length > 0 ? 1 : 0;
  } catch (err) {
    io.err(`The checksum scrub could not run: ${toUserMessage(err)}`);
    return 1;
  } finally {
    redis?.disconnect();
  }
}
