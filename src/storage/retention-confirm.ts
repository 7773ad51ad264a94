import type { Logger } from '../logger.ts';
import { protectedNewest } from './retention-plan.ts';
import type { Manifest } from './manifest.ts';
import type { RetentionPlan } from './retention-plan.ts';
import type { Storage, UnfinishedBackup } from './types.ts';

/** A storage's retention plan, with what it was made from (retention-run.ts planStorage). */
export interface Planned {
  plan: RetentionPlan;
  states: Map<string, UnfinishedBackup['state']>;
  backups: Manifest[];
  failedTests: ReadonlySet<string>;
}

export type ReadBackAndMark = (
  storage: Storage,
  m: Manifest,
  by: string,
  log: Logger,
  signal?: AbortSignal,
) => Promise<{ verdict: 'good' } | { verdict: 'damaged'; why: string; marked: boolean } | { verdict: 'unreadable'; why: string }>;

/**
 * Before any of a target's expired backups is deleted, the backup kept as its newest good one is read back whole (QA:
 * three newer backups rotted on disk, not yet found by the scrub, which runs after retention; retention kept the
 * newest of them as "good" and deleted the last backup that was). A damaged one is marked, which leaves it out of
 * every listing, and the next newest is read, until one is good; then the storage is planned again, so the backup
 * found good is the one kept. One that cannot be read (or be marked) holds that target's deletions until the next run.
 */
export async function keptConfirmed(
  storage: Storage,
  first: Planned,
  readBackAndMark: ReadBackAndMark,
  log: Logger,
  replan: () => Promise<Planned>,
  signal?: AbortSignal,
): Promise<Planned> {
  let planned = first;
  const confirmed = new Map<string, string>();
  const held = new Map<string, string>();
  // Planned again after each marking, and the newest kept read again if it changed (a backup finished meanwhile is
  // not kept unread while the one read good is deleted: second reader); at most three rounds, then held.
  for (let round = 0; round < 3; round++) {
    const keptNow = protectedNewest(planned.backups, planned.failedTests);
    const targets = [...new Set(planned.plan.delete.map((d) => d.target))].filter((t) => !held.has(t) && confirmed.get(t) !== keptNow.get(t));
    if (targets.length === 0) break;
    let marked = false;
    for (const target of targets) {
      let backups = planned.backups.filter((b) => b.target === target);
      for (;;) {
        const kept = backups.find((b) => b.backupId === protectedNewest(backups, planned.failedTests).get(target));
        if (!kept) break;
        const read = await readBackAndMark(storage, kept, 'retention, reading back the backup it keeps', log, signal);
        if (signal?.aborted) {
          held.set(target, `${kept.backupId}, the backup kept as its newest good one, was not read back: the run was canceled`);
          break;
        }
        if (read.verdict === 'good') {
          confirmed.set(target, kept.backupId);
          break;
        }
        if (read.verdict === 'damaged' && read.marked) {
          marked = true;
          backups = backups.filter((b) => b !== kept);
          continue;
        }
        const why = read.verdict === 'damaged' ? `is damaged (${read.why}) and could not be marked so` : `could not be read back (${read.why})`;
        held.set(target, `${kept.backupId}, the backup kept as its newest good one, ${why}`);
        break;
      }
    }
    if (!marked) break;
    planned = await replan();
  }
  const keptNow = protectedNewest(planned.backups, planned.failedTests);
  for (const t of new Set(planned.plan.delete.map((d) => d.target))) {
    if (!held.has(t) && confirmed.get(t) !== keptNow.get(t)) held.set(t, `${keptNow.get(t)}, the backup kept as its newest good one, was not read back yet`);
  }
  if (held.size === 0) return planned;
  // Nothing of a target whose kept backup is unconfirmed is deleted: kept, with why, until a run can read it; said.
  const plan = planned.plan;
  for (const d of plan.delete.filter((x) => held.has(x.target))) {
    plan.delete.splice(plan.delete.indexOf(d), 1);
    plan.keep.push({ target: d.target, backupId: d.backupId, reason: `${d.reason}, kept: ${held.get(d.target)}` });
  }
  plan.held = [...held].map(([target, why]) => `${target}: nothing deleted, since ${why}`);
  return planned;
}
