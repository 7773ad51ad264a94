import { formatDuration, formatTime } from '../format.ts';
import type { ConditionResult, HealthInput } from './types.ts';

/** A measurement older than this is no measurement: the worker that takes one every 2 s is gone or stuck. */
export const RPO_STALE_MS = 60_000;

type WalState = NonNullable<NonNullable<HealthInput['wal']>['state']>;

/** `0/3000148` as a number, to compare two positions (postgres/pitr/lsn.ts has the full version). */
const lsn = (text: string) => {
  const [hi = '0', lo = '0'] = text.split('/');
  return (BigInt(`0x${hi}`) << 32n) | BigInt(`0x${lo}`);
};

const seconds = (ms: number) => (ms < 120_000 ? `${Math.round(ms / 1000)} s` : formatDuration(ms));

/** Beyond this, the worker's and the server's clocks differ enough to say so (the sample's round trip is far less). */
export const CLOCK_SKEW_MS = 1000;

/**
 * The server's clock against the worker's: what WAL holds and when a base backup finished are timed by the server's
 * (position-sampler.ts, server-clock.ts), a backlog segment's and a snapshot's by the worker's corrected by the last
 * measured difference, and the RPO and health's ages by the worker's own. A difference this large says a clock is
 * off: NTP should keep it far below a second, and one that drifts between samples shifts the corrected times.
 */
function clockSkew(ms: string | undefined): string {
  const skew = Number(ms);
  if (!ms || !Number.isFinite(skew) || Math.abs(skew) <= CLOCK_SKEW_MS) return '';
  const by = seconds(Math.abs(skew));
  return `; the worker's clock is ${by} ${skew > 0 ? 'behind' : 'ahead of'} the server's (the archive's times are read by the server's clock, or corrected by this difference; ages and the RPO by the worker's): set both hosts' clocks by NTP`;
}

/**
 * The RPO of a target with point-in-time recovery against its objective (`pitr.rpoSeconds`), critical: over it,
 * more committed data than the team accepted would be lost if the server vanished now. Measured by the worker
 * (postgres/pitr/rpo-monitor.ts) and judged here at the check's own time: WAL missing from the archive since T
 * is an RPO of now − T, however old the measurement. Unknown (the server cannot be asked, no fresh measurement)
 * is never 0: it fails once it has lasted as long as the objective, at once when what is known already exceeds it.
 */
export function rpoCondition(target: string, now: Date, s: WalState | null): ConditionResult {
  const base = { condition: 'rpo', severity: 'critical' } as const;
  const objectiveS = Number(s?.rpoObjectiveSeconds);
  if (!s || !Number.isFinite(objectiveS) || objectiveS <= 0) {
    const evidence =
      s?.receiver === 'not started' && s.error
        ? `unknown: the WAL archive of ${target} is not running (${s.error})`
        : `unknown: no worker measures the RPO of ${target}; is a worker running, with this target's pitr section?`;
    return { ...base, status: 'failing', summary: `The RPO of ${target} cannot be measured`, evidence };
  }
  const objectiveMs = objectiveS * 1000;
  const objective = `objective ${seconds(objectiveMs)}`;
  const behindMs = s.rpoBehindSince ? Math.max(0, now.getTime() - Date.parse(s.rpoBehindSince)) : null;
  const measuredAt = s.rpoMeasuredAt ? Date.parse(s.rpoMeasuredAt) : null;
  const fresh = measuredAt !== null && !s.rpoError && now.getTime() - measuredAt <= RPO_STALE_MS;
  const partial = `${s.partialError ? `; ${s.partialError}` : ''}${clockSkew(s.clockSkewMs)}`;
  if (fresh) {
    const rpoMs = behindMs ?? 0;
    const worker =
      s.flushedLsn && s.archivedLsn && lsn(s.flushedLsn) > lsn(s.archivedLsn)
        ? `; the receiver's spool on the worker holds up to ${s.flushedLsn}, not archived yet`
        : '';
    const holds = s.archivedLsn && s.archivedLsn !== '0/0' ? `the archive holds up to ${s.archivedLsn}` : 'the archive holds none of its WAL yet';
    const evidence =
      behindMs === null
        ? `${seconds(0)} (${objective}): the archive holds everything the server has written (up to ${s.archivedLsn ?? 'its position'})${partial}`
        : `${seconds(rpoMs)} (${objective}): the server is at ${s.currentLsn}, ${holds}, WAL missing from it since ${formatTime(s.rpoBehindSince as string)}${worker}${partial}`;
    const failing = rpoMs > objectiveMs;
    return {
      ...base,
      status: failing ? 'failing' : 'ok',
      summary: failing
        ? `The RPO of ${target} is ${seconds(rpoMs)}, over its ${objective}: that much committed data would be lost if the server vanished now`
        : `The RPO of ${target} is ${seconds(rpoMs)}, within its ${objective}`,
      evidence,
      value: rpoMs / 1000,
    };
  }
  const lastKnown = measuredAt ?? Date.parse(s.since);
  const why = s.rpoError ?? (measuredAt === null ? 'not measured yet' : 'the worker stopped measuring it (is it running?)');
  const unknownMs = Math.max(0, now.getTime() - lastKnown);
  const atLeast =
    behindMs !== null ? `; at least ${seconds(behindMs)}: WAL has been missing from the archive since ${formatTime(s.rpoBehindSince as string)}` : '';
  const evidence = `unknown since ${formatTime(new Date(lastKnown))} (${objective}): ${why}${atLeast}${partial}`;
  if (behindMs !== null && behindMs > objectiveMs) {
    return { ...base, status: 'failing', summary: `The RPO of ${target} is at least ${seconds(behindMs)}, over its ${objective}`, evidence };
  }
  if (unknownMs > objectiveMs) return { ...base, status: 'failing', summary: `The RPO of ${target} cannot be measured`, evidence };
  return {
    ...base,
    status: 'ok',
    unjudged: true,
    summary: `The RPO of ${target} cannot be measured right now`,
    evidence: `${evidence} (fails when unknown for longer than the objective)`,
  };
}
