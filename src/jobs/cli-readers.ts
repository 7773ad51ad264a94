import { randomBytes } from 'node:crypto';
import { type RedisConnection, redisNow } from '../redis-client.ts';

/**
 * Backups the CLI is reading (`pg-backup-bot restore-test` with REDIS_URL set), which retention must not delete
 * under it. The workers' restore tests are seen in their queue; the CLI's are in no queue (QA: a CLI restore test of
 * an expired backup, retention run beside it deleted the backup, and the test then recorded PASSED for a backup that
 * was gone). One hash, `<prefix>:cli-readers`, field = a token per reader, value = the backup and until when (renewed
 * while it reads): a reader killed without its release is forgotten once its time runs out.
 */
export const cliReadersKey = (prefix: string) => `${prefix}:cli-readers`;

const HOLD_MS = 10 * 60_000;

// In one step: a field renewed between a read and its delete is never deleted. Unreadable fields go too.
const FORGET_EXPIRED = `
local all = redis.call('HGETALL', KEYS[1])
local now = tonumber(ARGV[1])
local gone = 0
for i = 1, #all, 2 do
  local ok, v = pcall(cjson.decode, all[i + 1])
  if not ok or type(v) ~= 'table' or type(v['until']) ~= 'number' or v['until'] <= now then
    redis.call('HDEL', KEYS[1], all[i])
    gone = gone + 1
  end
end
return gone`;

/** Where the readers are kept: the bot's Redis and key prefix. */
export interface CliReadersAt {
  redis: Pick<RedisConnection, 'hgetall' | 'time'>;
  prefix: string;
}

/** The backups held by CLI readers whose time has not run out (by Redis's clock; `now` for tests). */
export async function cliReaders(at: CliReadersAt, now?: number): Promise<string[]> {
  return (await liveReaders(at, now)).map((r) => r.backupId);
}

/**
 * The scratch databases of CLI restore tests running now: a worker that starts drops every other scratch database of
 * its deployment as a crash's leftover, and dropped one under a CLI restore test (CI: "the connection … was lost
 * during the restore test").
 */
export async function cliScratchDatabases(at: CliReadersAt): Promise<string[]> {
  return (await liveReaders(at)).flatMap((r) => (r.scratch ? [r.scratch] : []));
}

async function liveReaders(at: CliReadersAt, now?: number): Promise<Array<{ backupId: string; scratch?: string }>> {
  const [all, clock] = await Promise.all([at.redis.hgetall(cliReadersKey(at.prefix)), now ?? redisNow(at.redis)]);
  return Object.values(all).flatMap((raw) => {
    try {
      const v = JSON.parse(raw) as { backupId?: unknown; until?: unknown; scratch?: unknown };
      if (typeof v.backupId !== 'string' || typeof v.until !== 'number' || v.until <= clock) return [];
      return [{ backupId: v.backupId, ...(typeof v.scratch === 'string' ? { scratch: v.scratch } : {}) }];
    } catch {
      return [];
    }
  });
}

/**
 * Holds `backupId` against retention while the CLI reads it; renewed every few minutes until released. `lost` is
 * called once when a renewal fails (Redis gone): from its time running out, retention may delete the backup.
 */
export async function holdForCli(
  redis: RedisConnection,
  prefix: string,
  backupId: string,
  lost: (why: string) => void = () => undefined,
  /** A restore test's scratch database, kept from the start-up sweep of leftovers while this hold stands. */
  scratch?: string,
): Promise<{ release(): Promise<void> }> {
  const key = cliReadersKey(prefix);
  const token = randomBytes(8).toString('hex');
  const write = async () => redis.hset(key, token, JSON.stringify({ backupId, until: (await redisNow(redis)) + HOLD_MS, ...(scratch ? { scratch } : {}) }));
  await write();
  // Readers killed without their release left fields whose time ran out: each new reader removes them (second
  // reader: they were only ever ignored, so the hash grew with every CLI run killed).
  await redis.eval(FORGET_EXPIRED, 1, key, String(await redisNow(redis))).catch(() => undefined);
  let said = false;
  const timer = setInterval(
    () =>
      void write().catch((err: unknown) => {
        if (said) return;
        said = true;
        lost((err as Error).message);
      }),
    HOLD_MS / 4,
  );
  timer.unref();
  return {
    async release() {
      clearInterval(timer);
      await redis.hdel(key, token).catch(() => undefined);
    },
  };
}
