import { toUserMessage } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { verifyChecksums } from '../postgres/restore/checksums.ts';
import type { RedisConnection } from '../redis-client.ts';
import type { Manifest } from './manifest.ts';
import type { Storage } from './types.ts';

/**
 * The checksum scrub: every stored backup's artifacts read back and compared with the sha256 and size its manifest
 * records, so a backup that rotted on disk (or in the bucket) is found while there is time to take another, not on
 * the day it is needed. Listings only check that each artifact is there with its size; a restore test reads one
 * backup a month. A damaged backup is marked (storage markDamaged): from then on every listing leaves it out and
 * says why, health's `damaged` condition pages, and retention deletes it when its time comes.
 *
 * Each run reads the backups verified longest ago (never scrubbed: since they were written and read back) up to a
 * seventh of what is stored, and at least one: run daily with retention, every backup is read about once a week,
 * and no run reads the whole store.
 */
export interface ScrubState {
  /** When each backup (`<target>/<backupId>`) was last read back whole and found matching, epoch ms. */
  verifiedAt(): Promise<Map<string, number>>;
  remember(key: string, at: number): Promise<void>;
  /** Forgets backups no longer stored. */
  keepOnly(keys: ReadonlySet<string>): Promise<void>;
}

export interface ScrubReport {
  /** Backups read back whole and matching their manifests. */
  verified: number;
  verifiedBytes: number;
  /** Found damaged in this run, and marked so. */
  damaged: Array<{ target: string; backupId: string; why: string }>;
  /** Backups that could not be read (storage errors): not called damaged, tried again next run. */
  unreadable: Array<{ target: string; backupId: string; why: string }>;
  /** Stored backups in all, and their bytes: what one cycle covers. */
  stored: number;
  storedBytes: number;
}

const keyOf = (m: Pick<Manifest, 'target' | 'backupId'>) => `${m.target}/${m.backupId}`;
const bytesOf = (m: Manifest) => m.artifacts.reduce((n, a) => n + a.bytes, 0);

/** One scrub run over every target's backups in `storage` (see above); `signal` stops it between backups. */
export async function scrubBackups(o: { storage: Storage; state: ScrubState; now: Date; log: Logger; signal?: AbortSignal }): Promise<ScrubReport> {
  const backups = await o.storage.list();
  const seen = await o.state.verifiedAt();
  const lastRead = (m: Manifest) => seen.get(keyOf(m)) ?? Date.parse(m.finishedAt);
  const due = [...backups].sort((a, b) => lastRead(a) - lastRead(b));
  const storedBytes = backups.reduce((n, m) => n + bytesOf(m), 0);
  const budget = Math.ceil(storedBytes / 7);
  const report: ScrubReport = { verified: 0, verifiedBytes: 0, damaged: [], unreadable: [], stored: backups.length, storedBytes };
  let read = 0;
  for (const m of due) {
    if (o.signal?.aborted || (read > 0 && read >= budget)) break;
    read += bytesOf(m);
    try {
      const r = await verifyChecksums({ manifest: m, storage: o.storage, signal: o.signal });
      if (r.problems.length === 0) {
        report.verified++;
        report.verifiedBytes += bytesOf(m);
        await o.state.remember(keyOf(m), o.now.getTime());
        continue;
      }
      const why = `the checksum scrub found ${r.problems.join('; ')}`;
      o.log.error({ target: m.target, backupId: m.backupId, problems: r.problems }, 'checksum scrub: a stored backup is damaged');
      await o.storage.markDamaged?.(m.target, m.backupId, why, o.now);
      report.damaged.push({ target: m.target, backupId: m.backupId, why });
    } catch (err) {
      if (o.signal?.aborted) break;
      o.log.warn({ err, target: m.target, backupId: m.backupId }, 'checksum scrub: could not read a stored backup');
      report.unreadable.push({ target: m.target, backupId: m.backupId, why: toUserMessage(err) });
    }
  }
  await o.state.keepOnly(new Set(backups.map(keyOf)));
  return report;
}

/** The scrub's memory in Redis: one hash per bot, `<prefix>:scrub:verified`, field `<target>/<backupId>`. */
export function redisScrubState(redis: RedisConnection, prefix: string): ScrubState {
  const key = `${prefix}:scrub:verified`;
  return {
    async verifiedAt() {
      const all = await redis.hgetall(key);
      return new Map(Object.entries(all).map(([k, v]) => [k, Number(v)] as const));
    },
    async remember(field, at) {
      await redis.hset(key, field, String(at));
    },
    async keepOnly(keys) {
      const gone = (await redis.hkeys(key)).filter((k) => !keys.has(k));
      if (gone.length) await redis.hdel(key, ...gone);
    },
  };
}
