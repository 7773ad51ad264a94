import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { RedisConnection } from '../redis-client.ts';
import type { Logger } from '../logger.ts';

/**
 * The WAL lease: exactly one worker, on any host, runs a target's pg_receivewal. A Redis key per target holds the
 * holder's token (`SET NX PX`); the holder renews it well within its TTL (every third of it) and deletes it on a
 * clean stop. A renewal that fails, finds another token or the key gone, or does not answer within its own third of
 * the TTL, ends the holding at once: the holder stops its receiver before the TTL could let a second one start.
 * Every command touches one key, and the key carries the queue prefix's hash tag (`{pgbb}`), so it works on a Redis
 * Cluster as it is. Non-holders try again every `retryMs`; a killed holder's lease expires after `ttlMs`.
 */
export const walLeaseKey = (prefix: string, target: string) => `${prefix}:wal-lease:${target}`;

const RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end";
const RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";

export interface LeaseTiming {
  /** How long the lease lives without renewal (default 30 s): how soon another host takes over a dead holder's. */
  ttlMs: number;
  /** How often the holder renews it (default a third of the TTL). */
  renewMs: number;
  /** How often a non-holder tries to take it (default a sixth of the TTL). */
  retryMs: number;
}

export const DEFAULT_LEASE: LeaseTiming = { ttlMs: 30_000, renewMs: 10_000, retryMs: 5_000 };

/** "host pid 1234": who holds a lease, said in the WAL state and in logs; the random part keeps tokens unique. */
export function leaseToken(): { token: string; holder: string } {
  const holder = `${hostname()} pid ${process.pid}`;
  return { token: `${holder} ${randomBytes(6).toString('hex')}`, holder };
}

export interface LeaseOptions {
  redis: RedisConnection;
  key: string;
  token: string;
  timing?: Partial<LeaseTiming>;
  log: Logger;
  /** The lease is ours: start the work. Not awaited by the lease loop (renewals must not wait for it). */
  onAcquired(): void;
  /** The lease is no longer ours (`why` says how): stop the work at once. Not awaited either. */
  onLost(why: string): void;
}

export interface Lease {
  holding(): boolean;
  /** Stops trying; when held, `beforeRelease` runs first (the work stopped), then the key is deleted if still ours. */
  stop(beforeRelease?: () => Promise<void>): Promise<void>;
}

/** A command that does not answer within `ms` counts as failed (ioredis queues commands while disconnected). */
function answered<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`Redis did not answer within ${ms} ms`)), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (err: unknown) => {
        clearTimeout(t);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}

export function holdLease(o: LeaseOptions): Lease {
  const t = { ...DEFAULT_LEASE, ...o.timing };
  // A renewal is sent `renewMs` after the last one was sent and waited for `renewMs` at most, so a holder gives up
  // no later than 2 × renewMs after its last good renewal was sent — a third of the TTL before it can expire.
  const renewMs = Math.min(t.renewMs, Math.floor(t.ttlMs / 3));
  let lastSent = 0;
  let held = false;
  let stopping = false;
  let wake: (() => void) | undefined;
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, Math.max(0, ms));
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });

  /** Taken now, or already ours (a SET that answered after its timeout made it ours): renewed. */
  const take = async () =>
    (await o.redis.set(o.key, o.token, 'PX', t.ttlMs, 'NX')) === 'OK' || Number(await o.redis.eval(RENEW, 1, o.key, o.token, String(t.ttlMs))) === 1;

  const loop = (async () => {
    while (!stopping) {
      if (!held) {
        lastSent = Date.now();
        const got = await answered(take(), renewMs).catch((err: unknown) => {
          o.log.debug({ err }, 'WAL lease: could not ask Redis');
          return false;
        });
        if (stopping) break;
        if (got) {
          held = true;
          o.log.info({ key: o.key }, 'WAL lease taken: this worker receives the WAL');
          o.onAcquired();
          await sleep(lastSent + renewMs - Date.now());
        } else {
          await sleep(t.retryMs);
        }
        continue;
      }
      lastSent = Date.now();
      const renewed = await answered(o.redis.eval(RENEW, 1, o.key, o.token, String(t.ttlMs)), renewMs).then(
        (r) => (Number(r) === 1 ? null : 'another worker holds it now, or it expired'),
        (err: unknown) => `renewal failed: ${err instanceof Error ? err.message : String(err)}`,
      );
      if (stopping) break;
      if (renewed !== null) {
        held = false;
        o.log.warn({ key: o.key, why: renewed }, 'WAL lease lost: stopping this worker’s receiver');
        o.onLost(renewed);
        await sleep(t.retryMs);
        continue;
      }
      await sleep(lastSent + renewMs - Date.now());
    }
  })();

  return {
    holding: () => held,
    async stop(beforeRelease) {
      stopping = true;
      wake?.();
      await loop;
      if (!held) return;
      await beforeRelease?.();
      held = false;
      await answered(o.redis.eval(RELEASE, 1, o.key, o.token), renewMs).catch((err: unknown) =>
        o.log.warn({ err, key: o.key }, 'WAL lease not released: another worker takes over when it expires'),
      );
    },
  };
}
