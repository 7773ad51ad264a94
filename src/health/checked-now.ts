import { reasonOf } from '../errors.ts';
import { checkTarget, type HealthSources } from './collect.ts';
import { formatTime } from '../format.ts';
import type { StoredCondition } from './state.ts';
import { type ConditionResult, HEALTH_CONDITIONS, type HealthCondition } from './types.ts';

/** How long one target's check may take in a Slack answer before it is shown as not checked (Slack allows 3 s in all). */
export const CHECK_NOW_MS = 2000;

/**
 * One target's conditions judged now, for an answer (`/backup health`, the App Home): what checkTarget finds, or,
 * when its storage cannot be read (or does not answer in time), the target as `unchecked` with why, and its other
 * conditions as its last check left them (QA: the whole answer blamed Redis for an unreadable backup directory).
 */
export async function checkedNow(sources: HealthSources, target: string, now: Date, stored: Record<string, StoredCondition>): Promise<ConditionResult[]> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the backup storage did not answer within ${CHECK_NOW_MS} ms`)), CHECK_NOW_MS);
  });
  try {
    return (await Promise.race([checkTarget(sources, target, now), late])).results;
  } catch (err) {
    const why = reasonOf(err).replace(/\.$/, '');
    const last = Object.entries(stored)
      .filter((e): e is [HealthCondition, StoredCondition] => e[0] !== 'unchecked' && (HEALTH_CONDITIONS as readonly string[]).includes(e[0]))
      .map(
        ([condition, s]): ConditionResult => ({
          condition,
          status: s.status,
          severity: 'error',
          summary: `${target}: ${condition}`,
          evidence: `${s.evidence} (as last checked, ${formatTime(s.lastChecked)})`,
          ...(s.quiet ? { quiet: true as const } : {}),
        }),
      );
    const unchecked: ConditionResult = {
      condition: 'unchecked',
      status: 'failing',
      severity: 'error',
      summary: `${target}: its health cannot be checked`,
      evidence: `cannot be checked now: ${why}${last.length ? '; below, each condition as its last check left it' : ''}`,
    };
    return [unchecked, ...last];
  } finally {
    clearTimeout(timer);
  }
}
