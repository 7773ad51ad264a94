import type { RedisConnection } from '../redis-client.ts';
import { z } from 'zod';
import type { TargetDiskNeed } from './disk-condition.ts';
import type { ConditionResult, HealthStatus } from './types.ts';

/** What is remembered per target and condition, so "since when" and "post once" survive restarts. */
export const StoredConditionSchema = z.object({
  status: z.enum(['ok', 'failing']),
  /** ISO time the condition entered its current status (first seen in it). */
  since: z.string(),
  lastChecked: z.string(),
  evidence: z.string(),
  /** Failing without a page (ConditionResult.quiet); absent in state written before it existed. */
  quiet: z.boolean().optional(),
  /** ConditionResult.episode of a failure; absent for conditions without episodes and in older state. */
  episode: z.string().optional(),
});
export type StoredCondition = z.infer<typeof StoredConditionSchema>;

export interface AppliedResult {
  result: ConditionResult;
  previous: HealthStatus | null;
  /** The stored failure was a quiet one: nobody was told of it, so its clearing is not news either. */
  previousQuiet: boolean;
  /** The stored failure's episode (ConditionResult.episode), for saying what cleared; null without one. */
  previousEpisode: string | null;
  since: string;
  /**
   * Status differs from the stored one, a failure turned from quiet to loud (or back), or a failure is about another
   * episode than the stored one; a first observation counts only when it is failing.
   */
  changed: boolean;
}

export interface HealthState {
  apply(target: string, results: ConditionResult[], now: Date): Promise<AppliedResult[]>;
  read(target: string): Promise<Record<string, StoredCondition>>;
  /**
   * Subjects other than targets judged under `kind` (the backup disk, one per storage): notes `subject` as judged at
   * `at` and returns the others with when they were last judged, so one no longer judged (backups moved to another
   * disk or to S3) can be cleared, not left failing.
   */
  otherSubjects(kind: string, subject: string, at: Date): Promise<Array<{ subject: string; lastJudged: Date }>>;
  forgetSubject(kind: string, subject: string): Promise<void>;
  /**
   * A target's disk need as its check left it, under the storage it writes to: what the disk's condition judges by.
   * Kept only if no check that began later wrote one already (a slow check on one host must not put back what a
   * newer check on another host replaced: second reader).
   */
  putDiskNeed(subject: string, need: TargetDiskNeed, checkedAt: Date): Promise<void>;
  diskNeeds(subject: string): Promise<TargetDiskNeed[]>;
}

const StoredNeedSchema = z.object({
  target: z.string(),
  next: z.object({ what: z.string(), bytes: z.number() }).nullable(),
  ranOut: z.object({ ok: z.boolean(), at: z.string(), reason: z.string().nullable(), jobId: z.string().nullable() }).nullable(),
});

// Read and write one field in one step: two health jobs checking at once cannot both see a change and both post.
// `since` is kept while the status (and the episode, ARGV[6], '' for none) stays the same; the previous value is
// returned for the caller to compare. `quiet` and `episode` are written only when set (a nil field is left out), so
// other conditions' state reads as before.
const APPLY_FIELD = `
local prev = redis.call('HGET', KEYS[1], ARGV[1])
local since = ARGV[3]
if prev then
  local ok, p = pcall(cjson.decode, prev)
  if ok and type(p) == 'table' and p.status == ARGV[2] and type(p.since) == 'string' and (p.episode or '') == ARGV[6] then since = p.since end
end
local episode = nil
if ARGV[6] ~= '' then episode = ARGV[6] end
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode({ status = ARGV[2], since = since, lastChecked = ARGV[3], evidence = ARGV[4], quiet = (ARGV[5] == '1') or nil, episode = episode }))
return prev`;

// One field, written unless the one there was checked later (ISO times compare as strings).
const PUT_IF_NEWER = `
local prev = redis.call('HGET', KEYS[1], ARGV[1])
if prev then
  local ok, p = pcall(cjson.decode, prev)
  if ok and type(p) == 'table' and type(p.checkedAt) == 'string' and p.checkedAt > ARGV[3] then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1`;

function parseStored(raw: string | null): StoredCondition | null {
  if (raw === null) return null;
  try {
    const parsed = StoredConditionSchema.safeParse(JSON.parse(raw));
    return parsed.success ? parsed.data : null;
  } catch {
    // Unreadable state is treated as never seen: at worst one extra post, never a missed one.
    return null;
  }
}

/** Health verdicts per target in the Redis hash `${prefix}:health:<target>`, one field per condition. */
export function createHealthState(redis: RedisConnection, prefix: string): HealthState {
  const key = (target: string) => `${prefix}:health:${target}`;
  return {
    async apply(target, results, now) {
      const at = now.toISOString();
      return Promise.all(
        results.map(async (result): Promise<AppliedResult> => {
          const quiet = result.quiet === true;
          const episode = result.status === 'failing' ? (result.episode ?? '') : '';
          const raw = (await redis.eval(APPLY_FIELD, 1, key(target), result.condition, result.status, at, result.evidence, quiet ? '1' : '0', episode)) as
            | string
            | null;
          const stored = parseStored(raw);
          const previous = stored?.status ?? null;
          const previousQuiet = stored?.quiet === true;
          const same = previous === result.status;
          // Quiet → loud is the moment a never-backed-up target's first backup becomes overdue: that must page.
          const loudness = result.status === 'failing' && same && previousQuiet !== quiet;
          // Another failure of the same condition (data-drift: a second table lost in the next backup) is news too.
          const newEpisode = result.status === 'failing' && same && episode !== (stored?.episode ?? '');
          return {
            result,
            previous,
            previousQuiet,
            previousEpisode: stored?.episode ?? null,
            since: same && stored && !newEpisode ? stored.since : at,
            changed: previous === null ? result.status === 'failing' : !same || loudness || newEpisode,
          };
        }),
      );
    },
    async otherSubjects(kind, subject, at) {
      const judged = `${prefix}:health-judged:${kind}`;
      await redis.hset(judged, subject, at.toISOString());
      return Object.entries(await redis.hgetall(judged))
        .filter(([x, when]) => x !== subject && !Number.isNaN(Date.parse(when)))
        .map(([x, when]) => ({ subject: x, lastJudged: new Date(when) }))
        .sort((a, b) => (a.subject < b.subject ? -1 : 1));
    },
    async forgetSubject(kind, subject) {
      await redis.hdel(`${prefix}:health-judged:${kind}`, subject);
      await redis.del(`${prefix}:health-disk-needs:${subject}`);
    },
    async putDiskNeed(subject, need, checkedAt) {
      const stored = { ...need, ranOut: need.ranOut ? { ...need.ranOut, at: need.ranOut.at.toISOString() } : null, checkedAt: checkedAt.toISOString() };
      await redis.eval(PUT_IF_NEWER, 1, `${prefix}:health-disk-needs:${subject}`, need.target, JSON.stringify(stored), stored.checkedAt);
    },
    async diskNeeds(subject) {
      const all = await redis.hgetall(`${prefix}:health-disk-needs:${subject}`);
      const out: TargetDiskNeed[] = [];
      for (const raw of Object.values(all)) {
        try {
          const n = StoredNeedSchema.parse(JSON.parse(raw));
          out.push({ ...n, ranOut: n.ranOut ? { ...n.ranOut, at: new Date(n.ranOut.at) } : null });
        } catch {
          // Unreadable: that target counts as not checked until its next check writes it again.
        }
      }
      return out;
    },
    async read(target) {
      const all = await redis.hgetall(key(target));
      const out: Record<string, StoredCondition> = {};
      for (const [field, raw] of Object.entries(all)) {
        const stored = parseStored(raw);
        if (stored) out[field] = stored;
      }
      return out;
    },
  };
}
