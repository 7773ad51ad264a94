import { formatBytes, formatSecond } from '../format.ts';
import { switchedSentence } from '../postgres/pitr/switched.ts';
import { followedText, priorText, setAsideNamed, shownRange, WAL_ARRIVES } from '../postgres/pitr/window.ts';
import type { ConditionResult } from './types.ts';
import type { WalArchiveFacts, WalHealthFacts, WalSlotFacts } from './wal-types.ts';

/** To the second: a recovery target is a second, and a minute rounded the wrong way would promise what is not there. */
export const windowTime = formatSecond;

/**
 * Why nothing is recoverable when no window opens and no gap is to blame: no base backup at all, the only ones set
 * aside as damaged by the checksum scrub (said, so "yet" does not read as "none was ever taken"), or no WAL after it.
 */
export function noWindowSentence(target: string, a: Pick<WalArchiveFacts, 'baseBackups' | 'setAside'>): string {
  if (a.baseBackups > 0)
    return `nothing recoverable yet: no WAL archived reaches past the base backup (the window opens once WAL the server writes after it is archived: ${WAL_ARRIVES})`;
  const take = `take one: \`pg-backup-bot base-backup ${target}\``;
  const aside = a.setAside?.bases ?? [];
  if (aside.length === 0) return `nothing recoverable yet: no base backup (${take})`;
  return `nothing recoverable: no good base backup (${setAsideNamed(aside)} set aside as damaged by the checksum scrub; ${take})`;
}

/** "recoverable to any moment from … to …", and what an older gap leaves out; or why nothing is recoverable. */
export function windowSentence(target: string, a: WalArchiveFacts): string {
  if (!a.window) return noWindowSentence(target, a);
  const range = `recoverable to any moment ${shownRange(a.window, windowTime)}${followedText(a.followed)}`;
  const before = a.earlier ? `, and ${shownRange(a.earlier, windowTime)} before the gap${a.earlier.gap ? ` at segment ${a.earlier.gap}` : ''}` : '';
  const prior = a.priorTimeline ? `, and ${priorText(target, a.priorTimeline, shownRange(a.priorTimeline, windowTime))}` : '';
  return `${range}${before}${prior}`;
}

/** wal-gap's name for a timeline no base backup was taken on (no gap is missing), failing and cleared. */
export const switchLabel = (timeline: number) => `new timeline ${timeline} without a base backup`;

const more = (gaps: string[]) => (gaps.length > 1 ? ` (and ${gaps.length - 1} more)` : '');

/**
 * `wal-gap`, critical: a segment missing between the oldest base backup's start and the newest archived segment,
 * with no base backup started after it. Recovery replays WAL in order, so nothing after the gap can be recovered
 * until a new base backup is taken: the window starts again at its end. A gap behind such a base backup is history
 * (said in the evidence), not a failure.
 */
export function walGapCondition(target: string, a: WalArchiveFacts): ConditionResult {
  const base = { condition: 'wal-gap', severity: 'critical' } as const;
  if (a.notKept)
    return { ...base, status: 'ok', unjudged: true, summary: `The WAL archive of ${target} is not checked for gaps`, evidence: `not checked: ${a.notKept}` };
  if (a.unreadable) {
    const evidence = `the WAL archive could not be read: ${a.unreadable}. Recovery needs it: check the archive's directory and its index files`;
    return { ...base, status: 'failing', summary: `The WAL archive of ${target} could not be read`, evidence };
  }
  const window = windowSentence(target, a);
  const first = a.gap ?? a.gaps[0];
  if (first && !a.reachesNewest) {
    return {
      ...base,
      status: 'failing',
      summary: `The WAL archive of ${target} has a gap: segment ${first} is missing`,
      evidence:
        `segment ${first} is missing from the WAL archive${more(a.gaps)}: recovery cannot cross it, so nothing written after it can be recovered. ` +
        `Take a new base backup now (\`pg-backup-bot base-backup ${target}\`): the window starts again when it finishes. Until then: ${window}`,
      value: a.gaps.length,
    };
  }
  // A promotion since the newest base backup: what the server writes now is archived, and out of reach (QA: the window
  // read on across the switch, and a recovery there came back ten minutes short, called "the same data").
  if (a.switched) {
    const said = switchedSentence(target, a.switched);
    return {
      ...base,
      status: 'failing',
      // Its own episode: a gap then a switch (or the reverse) is news, and it names the failure and its clearing
      // (health-messages.ts conditionLabel: switchLabel).
      episode: `timeline-${a.switched.timeline}`,
      summary: `The WAL archive of ${target} cannot recover past timeline ${a.switched.timeline}'s start: no base backup on it yet`,
      evidence: `${said.charAt(0).toUpperCase()}${said.slice(1)} Until then: ${window}`,
    };
  }
  // The check mark is about gaps only: the evidence says plainly when nothing is recoverable (no base backup yet).
  const evidence = first
    ? `no segment missing since the base backup the window starts from; ${window}; an older gap (segment ${first} missing${more(a.gaps)}) lies before it`
    : `no segment missing; ${window}`;
  return { ...base, status: 'ok', summary: `The WAL archive of ${target} has no gap`, evidence, value: a.gaps.length };
}

/** A value for max_slot_wal_keep_size: four times the alert limit, so the alert comes well before the server gives up. */
export function keepSizeAdvice(limitBytes: number): string {
  const mb = Math.ceil((4 * limitBytes) / 1024 ** 2);
  return mb % 1024 === 0 ? `${mb / 1024}GB` : `${mb}MB`;
}

function keepSizeNote(s: WalSlotFacts): string {
  if (s.keepSizeMb === -1) {
    return (
      `. max_slot_wal_keep_size is unlimited (-1) on the server, so an abandoned slot fills its disk: set it, e.g. ` +
      `\`ALTER SYSTEM SET max_slot_wal_keep_size = '${keepSizeAdvice(s.limitBytes)}'; SELECT pg_reload_conf();\` ` +
      '(past it the server gives up the slot instead: the archive then has a gap, which a new base backup heals)'
    );
  }
  if (typeof s.safeWalSize === 'number')
    return `; the server gives the slot up after ${formatBytes(Math.max(0, s.safeWalSize))} more WAL (max_slot_wal_keep_size)`;
  return '';
}

/**
 * `wal-slot`, critical: the archive's replication slot holding more WAL on the server than `pitr.slotMaxBytes`, about
 * to lose it (wal_status unreserved), having lost it (lost: the archive has a gap), or missing. An abandoned slot
 * fills the primary's disk: the most dangerous failure of a WAL archive. A server that cannot be asked is shown,
 * never paged (the backups and the WAL stream already page for an unreachable server).
 */
export function walSlotCondition(target: string, s: WalSlotFacts, archived = true): ConditionResult {
  const base = { condition: 'wal-slot', severity: 'critical' } as const;
  const slot = `slot ${s.name}`;
  // The server named: the slot is read through the target's own connection, which may not be the replication URL's.
  const where = s.server ? `the server (${s.server})` : 'the server';
  if (s.error) {
    return {
      ...base,
      status: 'failing',
      quiet: true,
      summary: `The replication slot of ${target} could not be checked`,
      evidence: `could not read ${slot} on ${where}: ${s.error}`,
    };
  }
  const note = keepSizeNote(s);
  const fail = (summary: string, evidence: string): ConditionResult => ({
    ...base,
    status: 'failing',
    summary,
    evidence: `${evidence}${note}`,
    ...(typeof s.retainedBytes === 'number' ? { value: s.retainedBytes } : {}),
  });
  // Nothing archived yet: a new target whose worker has not started its receiver (QA: the demo opened with a critical
  // "slot does not exist" a moment before the slot was made). Said, never paged; once WAL was archived, it pages.
  if (!s.exists && !archived) {
    return {
      ...base,
      status: 'failing',
      quiet: true,
      summary: `The replication slot ${s.name} of ${target} is not created yet`,
      evidence: `${slot} does not exist on ${where} yet, and no WAL was archived: a worker creates it when its receiver starts (see the WAL stream)`,
    };
  }
  if (!s.exists) {
    return fail(
      `The replication slot ${s.name} of ${target} does not exist`,
      `${slot} does not exist on ${where}, so it keeps no WAL for the archive. A worker creates it when its receiver starts (see the WAL stream); ` +
        'if it was dropped while the stream was down, the WAL in between is gone: take a new base backup once the stream is up',
    );
  }
  const held = typeof s.retainedBytes === 'number' ? formatBytes(s.retainedBytes) : 'an unknown amount';
  const receiver = s.active ? 'a receiver is connected' : 'no receiver is connected';
  if (s.walStatus === 'lost') {
    return fail(
      `The replication slot ${s.name} of ${target} has lost WAL: the archive has a gap`,
      `${slot} has lost WAL (wal_status lost): the server removed segments the archive never received, so the archive has a gap. ` +
        `Drop the slot (\`SELECT pg_drop_replication_slot('${s.name}')\`) so the worker creates it afresh, then take a new base backup ` +
        `(\`pg-backup-bot base-backup ${target}\`): recovery can only start after it`,
    );
  }
  if (s.walStatus === 'unreserved') {
    return fail(
      `The replication slot ${s.name} of ${target} is about to lose WAL`,
      `${slot} holds ${held} of WAL and the server will remove some of it at its next checkpoint (wal_status unreserved); ${receiver}. ` +
        'Unless the receiver catches up first, the archive gets a gap: get the WAL stream running now',
    );
  }
  const retained = s.retainedBytes ?? 0;
  if (retained > s.limitBytes) {
    return fail(
      `The replication slot ${s.name} of ${target} holds ${held} of WAL on the server`,
      `${slot} holds ${held} of WAL on ${where}, over the limit of ${formatBytes(s.limitBytes)} (pitr.slotMaxBytes); ${receiver}. ` +
        'The server keeps every segment the archive has not received, until its disk is full: get the WAL stream running (see the WAL stream), or drop the slot if the archive is abandoned',
    );
  }
  return {
    ...base,
    status: 'ok',
    summary: `The replication slot ${s.name} of ${target} holds ${held} of WAL`,
    evidence: `${slot} holds ${held} of WAL (limit ${formatBytes(s.limitBytes)}); ${receiver}${note}`,
    value: retained,
  };
}

/** Both WAL conditions of a target with point-in-time recovery, in HEALTH_CONDITIONS order. */
export function walConditions(target: string, facts: WalHealthFacts | undefined): ConditionResult[] {
  return facts
    ? [walGapCondition(target, facts.archive), walSlotCondition(target, facts.slot, facts.archive.newestSegment !== null || !!facts.archive.unreadable)]
    : [];
}
