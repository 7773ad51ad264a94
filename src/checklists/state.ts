import { randomBytes } from 'node:crypto';
import type { RedisConnection } from '../redis-client.ts';
import { z } from 'zod';
import { tryRedisLock } from '../jobs/redis-lock.ts';
import { selectedIds, type ChecklistItem, type ChecklistKind } from '../notifications/checklists.ts';
import type { MessageRef } from '../notifications/types.ts';

/**
 * A posted checklist's state in Redis, keyed by its message (channel + ts), so a tick can be applied to what the
 * message shows. A hash: `state` (JSON) and `version`, the number in the message's block ids. Saves are
 * compare-and-set on the version and run under a per-message lock, so two people ticking at once never lose
 * each other's tick, and the message updates leave Slack in version order.
 */

export const CHECKLIST_TTL_SECONDS = 35 * 24 * 3600;
/** Versions whose ticked ids are remembered: a click on a copy older than that is refused, not guessed at. */
export const SHOWN_VERSIONS_KEPT = 50;

const Item = z.object({
  id: z.string(),
  label: z.string(),
  verified: z.object({ ok: z.boolean(), evidence: z.string() }).nullable(),
  ticked: z.object({ by: z.string(), at: z.string() }).nullable(),
});

export const ChecklistStateSchema = z.object({
  kind: z.enum(['daily', 'weekly', 'monthly', 'pre-migration']),
  version: z.number().int().positive(),
  subtitle: z.string().nullable(),
  items: z.array(Item),
  /** Ids shown ticked by each recent version (`"3": [...]`): what a click on that copy toggled from. */
  shown: z.record(z.string(), z.array(z.string())),
});
export type ChecklistState = z.infer<typeof ChecklistStateSchema>;

/** A new checklist's state at version 1. */
export function initialState(kind: ChecklistKind, items: ChecklistItem[], subtitle: string | null): ChecklistState {
  return { kind, version: 1, subtitle, items, shown: { '1': selectedIds(items) } };
}

/** The state after a change: the next version, and what it shows remembered for clicks on it. */
export function nextVersion(state: ChecklistState, items: ChecklistItem[]): ChecklistState {
  const version = state.version + 1;
  const kept = Object.keys(state.shown)
    .map(Number)
    .filter((v) => v > version - SHOWN_VERSIONS_KEPT);
  const shown: Record<string, string[]> = {};
  for (const v of kept) shown[String(v)] = state.shown[String(v)] ?? [];
  shown[String(version)] = selectedIds(items);
  return { ...state, version, items, shown };
}

// Sets the new state only if the stored version is still the one this writer read (KEYS[1] hash, ARGV expected
// version, new version, JSON). HSET keeps the key's TTL.
const CAS = `
if redis.call('HGET', KEYS[1], 'version') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'version', ARGV[2], 'state', ARGV[3])
return 1`;

export class ChecklistBusy extends Error {
  constructor() {
    super('the checklist is being changed by someone else');
    this.name = 'ChecklistBusy';
  }
}

export interface ChecklistStore {
  create(ref: MessageRef, state: ChecklistState): Promise<void>;
  load(ref: MessageRef): Promise<ChecklistState | null>;
  /** Compare-and-set: false when someone saved another version since `expectedVersion` was read. */
  save(ref: MessageRef, expectedVersion: number, state: ChecklistState): Promise<boolean>;
  /** Runs `work` holding the message's lock (waits up to `waitMs`, then throws ChecklistBusy). */
  withLock<T>(ref: MessageRef, work: () => Promise<T>): Promise<T>;
}

export function createChecklistStore(
  redis: RedisConnection,
  prefix: string,
  opts: { ttlSeconds?: number; lockMs?: number; waitMs?: number } = {},
): ChecklistStore {
  const key = (ref: MessageRef) => `${prefix}:checklist:${ref.channel}:${ref.ts}`;
  const ttl = opts.ttlSeconds ?? CHECKLIST_TTL_SECONDS;
  const lockMs = opts.lockMs ?? 30_000;
  const waitMs = opts.waitMs ?? 10_000;
  return {
    async create(ref, state) {
      await redis.multi().hset(key(ref), 'version', String(state.version), 'state', JSON.stringify(state)).expire(key(ref), ttl).exec();
    },
    async load(ref) {
      const raw = await redis.hget(key(ref), 'state');
      if (raw === null) return null;
      const parsed = ChecklistStateSchema.safeParse(JSON.parse(raw));
      return parsed.success ? parsed.data : null;
    },
    async save(ref, expectedVersion, state) {
      const done = await redis.eval(CAS, 1, key(ref), String(expectedVersion), String(state.version), JSON.stringify(state));
      return done === 1;
    },
    async withLock(ref, work) {
      const lock = `${key(ref)}:lock`;
      const token = randomBytes(12).toString('hex');
      const end = Date.now() + waitMs;
      let held = await tryRedisLock(redis, lock, token, lockMs);
      while (!held) {
        if (Date.now() > end) throw new ChecklistBusy();
        await new Promise((r) => setTimeout(r, 25 + Math.random() * 50));
        held = await tryRedisLock(redis, lock, token, lockMs);
      }
      try {
        return await work();
      } finally {
        // Released only if still ours (it may have expired and been taken by someone else).
        await held.release();
      }
    },
  };
}
