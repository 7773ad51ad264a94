import { toUserMessage } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { verifyChecksums } from '../postgres/restore/checksums.ts';
import type { RedisConnection } from '../redis-client.ts';
import type { Manifest } from './manifest.ts';
import type { ReadBackAndMark } from './retention-confirm.ts';
import type { Storage } from './types.ts';
import { rolesFileOnly } from './damaged-backups.ts';

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
  /** When the scrub last read (or tried to read) each backup (`<target>/<backupId>`), epoch ms: its order, never a verdict. */
  verifiedAt(): Promise<Map<string, number>>;
  remember(key: string, at: number): Promise<void>;
  /** Forgets backups no longer stored. */
  keepOnly(keys: ReadonlySet<string>): Promise<void>;
}

export interface ScrubReport {
  /** Backups read back whole and matching their manifests, by id. */
  verified: string[];
  verifiedBytes: number;
  /** Found damaged in this run, and marked so. */
  damaged: Array<{ target: string; backupId: string; why: string; marked?: true; archiveIntact?: true }>;
  /** Backups that could not be read (storage errors, or changed while read): not called damaged, tried again next run. */
  unreadable: Array<{ target: string; backupId: string; why: string }>;
  /** Stored backups in all, and their bytes: what one cycle covers. */
  stored: number;
  storedBytes: number;
  /** Stored backups the listing already leaves out as damaged (marked before, or a file missing or short): not read. */
  alreadyDamaged: Array<{ target: string; backupId: string; why: string; marked?: true }>;
  /** Damaged ones past their deadline (`deadline`, ISO): not read, not mended, deleted by the next retention run. */
  expired: Array<{ target: string; backupId: string; why: string; deadline: string }>;
}

const keyOf = (m: Pick<Manifest, 'target' | 'backupId'>) => `${m.target}/${m.backupId}`;
const bytesOf = (m: Manifest) => m.artifacts.reduce((n, a) => n + a.bytes, 0);

/** One scrub run over every target's backups in `storage` (see above); `signal` stops it between backups. */
export async function scrubBackups(o: {
  storage: Storage;
  state: ScrubState;
  now: Date;
  log: Logger;
  signal?: AbortSignal | undefined;
  /** Every stored backup in this run (`pg-backup-bot scrub --all`), not a seventh. */
  all?: boolean;
}): Promise<ScrubReport> {
  const backups = await o.storage.list();
  const seen = await o.state.verifiedAt();
  const lastRead = (m: Manifest) => seen.get(keyOf(m)) ?? Date.parse(m.finishedAt);
  const due = [...backups].sort((a, b) => lastRead(a) - lastRead(b));
  const storedBytes = backups.reduce((n, m) => n + bytesOf(m), 0);
  const budget = o.all ? Number.POSITIVE_INFINITY : Math.ceil(storedBytes / 7);
  const listed = o.storage.damaged?.() ?? [];
  const alreadyDamaged = listed
    .filter((d) => !d.expired)
    .map(({ target, backupId, why, marked }) => ({ target, backupId, why, ...(marked ? { marked } : {}) }));
  const expired = listed.flatMap(({ target, backupId, why, expired: deadline }) => (deadline ? [{ target, backupId, why, deadline }] : []));
  const report: ScrubReport = {
    verified: [],
    verifiedBytes: 0,
    damaged: [],
    unreadable: [],
    stored: backups.length,
    storedBytes,
    alreadyDamaged,
    expired,
  };
  let read = 0;
  for (const m of due) {
    if (o.signal?.aborted || (read > 0 && read >= budget)) break;
    const id = { target: m.target, backupId: m.backupId };
    let verdict: Verdict;
    try {
      verdict = await readBack(o.storage, m, o.signal);
    } catch (err) {
      if (o.signal?.aborted) break;
      verdict = { unreadable: toUserMessage(err) };
    }
    // Tried now, whatever came of it: a backup that cannot be read goes to the back of the line, not the front.
    await o.state.remember(keyOf(m), o.now.getTime()).catch((err: unknown) => o.log.warn({ err }, 'checksum scrub: could not record a read in Redis'));
    if ('unreadable' in verdict) {
      o.log.warn({ ...id, why: verdict.unreadable }, 'checksum scrub: could not read a stored backup');
      report.unreadable.push({ ...id, why: verdict.unreadable });
      continue;
    }
    read += bytesOf(m);
    if (verdict.problems.length === 0) {
      report.verified.push(m.backupId);
      report.verifiedBytes += bytesOf(m);
      continue;
    }
    const why = `the checksum scrub found ${verdict.problems.join('; ')}`;
    o.log.error({ ...id, problems: verdict.problems }, 'checksum scrub: a stored backup is damaged');
    // Said even when the mark cannot be written: the damage is real either way.
    const marked = await (o.storage.markDamaged?.(m.target, m.backupId, why, o.now) ?? Promise.resolve()).then(
      () => '',
      (err: unknown) => ` (it could not be marked damaged: ${toUserMessage(err)})`,
    );
    report.damaged.push({
      ...id,
      why: `${why}${marked}`,
      ...(marked === '' && o.storage.markDamaged ? { marked: true as const } : {}),
      ...(rolesFileOnly(m, why) ? { archiveIntact: true as const } : {}),
    });
  }
  await o.state.keepOnly(new Set(backups.map(keyOf))).catch((err: unknown) => o.log.warn({ err }, 'checksum scrub: could not tidy its record in Redis'));
  return report;
}

/**
 * A backup a restore or restore test found corrupted (an artifact's sha256 is not its manifest's): read back as the
 * scrub reads it, and marked damaged when two more reads agree, so listings, `/restore` and restore tests stop
 * offering it and health pages it. Returns the reason marked, or null (every checksum matched, not confirmed, no
 * marking on this storage, or it failed).
 */
export async function confirmDamage(
  storage: Storage,
  m: Manifest,
  found: { by: string; checksums: ReadonlyArray<{ ok: boolean }> },
  o: { log: Logger; signal?: AbortSignal | undefined },
): Promise<string | null> {
  if (!storage.markDamaged || found.checksums.every((c) => c.ok)) return null;
  const by = found.by;
  try {
    const v = await readBack(storage, m, o.signal);
    if ('unreadable' in v || v.problems.length === 0) return null;
    const why = `${by} found ${v.problems.join('; ')}`;
    await storage.markDamaged(m.target, m.backupId, why);
    return why;
  } catch (err) {
    o.log.warn({ err, target: m.target, backupId: m.backupId }, `could not confirm and mark the damage ${by} found`);
    return null;
  }
}

/**
 * One backup read back as the scrub reads it, and marked damaged when it is: 'good', 'damaged' (with the mark written,
 * or false where the storage cannot mark), or why it could not be read.
 */
export const readBackAndMark: ReadBackAndMark = async (storage, m, by, log, signal) => {
  const v = await readBack(storage, m, signal).catch((err: unknown) => ({ unreadable: toUserMessage(err) }));
  if ('unreadable' in v) return { verdict: 'unreadable', why: v.unreadable };
  if (v.problems.length === 0) return { verdict: 'good' };
  const why = `${by} found ${v.problems.join('; ')}`;
  log.error({ target: m.target, backupId: m.backupId, problems: v.problems }, `${by}: a stored backup is damaged`);
  const marked = await (storage.markDamaged?.(m.target, m.backupId, why) ?? Promise.reject(new Error('no marks on this storage'))).then(
    () => true,
    () => false,
  );
  return { verdict: 'damaged', why, marked };
};

/**
 * readBackAndMark that records the read in the scrub's memory of that storage (the primary's, or a copy's), so the
 * scrub that runs after retention does not read the same backup again the same day; a failure to record is logged.
 */
export function rememberedReadBack(stateOf: (storage: Storage) => ScrubState | undefined, now: () => Date = () => new Date()): ReadBackAndMark {
  return async (storage, m, by, log, signal) => {
    const verdict = await readBackAndMark(storage, m, by, log, signal);
    // A read cut short by a cancel is no read: the scrub reads it next as it would have.
    if (signal?.aborted) return verdict;
    await stateOf(storage)
      ?.remember(keyOf(m), now().getTime())
      .catch((err: unknown) => log.warn({ err }, `${by}: could not record the read in Redis`));
    return verdict;
  };
}

type Verdict = { problems: string[] } | { unreadable: string };

/**
 * A backup read back, twice when it does not match: damage is what two reads agree on, as a sha256 that differs from
 * the manifest's. An artifact missing or of another size is not: the listing that chose it had just found every
 * artifact there with its size, so the file changed while being read (a delete, a store whose listing lags, a read
 * cut short) and is tried again next run.
 */
async function readBack(storage: Storage, m: Manifest, signal: AbortSignal | undefined): Promise<Verdict> {
  const first = await verifyChecksums({ manifest: m, storage, signal });
  if (first.problems.length === 0) return first;
  const again = await verifyChecksums({ manifest: m, storage, signal });
  if (again.problems.length === 0) return again;
  const changed = again.problems.find((p) => !/^artifact corrupted: .* \(sha256 /.test(p));
  if (changed || again.problems.join() !== first.problems.join()) return { unreadable: `it changed while being read (${changed ?? again.problems[0]})` };
  return again;
}

/** The scrub's memory in a Map, for a run without Redis (`pg-backup-bot scrub` with no REDIS_URL). */
export function memoryScrubState(): ScrubState & { seen: Map<string, number> } {
  const seen = new Map<string, number>();
  return {
    seen,
    verifiedAt: async () => new Map(seen),
    remember: async (key, at) => void seen.set(key, at),
    keepOnly: async (keys) => {
      for (const k of [...seen.keys()]) if (!keys.has(k)) seen.delete(k);
    },
  };
}

/** An off-site copy's scrub memory: its own hash, by where the copy is (a bucket changed in the config starts afresh). */
export const copyScrubState = (redis: RedisConnection, prefix: string, copy: Pick<Storage, 'describe'>) =>
  redisScrubState(redis, `${prefix}:copy:${copy.describe()}`);

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
