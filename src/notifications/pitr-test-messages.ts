import { escapeMrkdwn, formatBytes, formatDuration } from '../format.ts';
import type { RestoreJobInfo } from './restore-messages.ts';
import type { Block, ChannelMessage } from './types.ts';

/** Pure builders for point-in-time restore tests: outcome → `{ text, blocks }`. */

export interface PitrTestInfo extends Omit<RestoreJobInfo, 'backupId'> {
  /** What was asked: `latest`, `random`, or the time as typed. */
  asked: string;
}

/** The parts of postgres/pitr's PitrTestOutcome a message shows. */
export interface PitrTestVerdict {
  at: string | null;
  baseId: string | null;
  passed: boolean;
  checks: Array<{ name: string; ok: boolean | null; detail: string }>;
  phasesMs: { fetch: number; replay: number; checks: number };
  rtoMs: number;
  wal: { segments: number; bytes: number };
  scratchRemoved: boolean;
}

function who(r: RestoreJobInfo['requestedBy']): string {
  if (r.userId) return `<@${r.userId}>`;
  return r.source === 'schedule' ? 'the schedule' : escapeMrkdwn(r.userName ?? r.source);
}

const context = (text: string): Block => ({ type: 'context', elements: [{ type: 'mrkdwn', text }] });
const footer = (req: PitrTestInfo, extra = '') =>
  context(`job \`${req.jobId}\` · target ${req.target} · requested by ${who(req.requestedBy)}${req.purpose ? ` · ${escapeMrkdwn(req.purpose)}` : ''}${extra}`);
const what = (req: PitrTestInfo) =>
  `PITR restore test of *${req.target}* to ${req.asked === 'latest' ? 'the latest moment' : req.asked === 'random' ? 'a random moment of the window' : `\`${req.asked}\``}`;

export function pitrTestRunning(req: PitrTestInfo, phase: string): ChannelMessage {
  return {
    text: `PITR restore test of ${req.target} running (${phase})`,
    blocks: [{ type: 'section', text: { type: 'mrkdwn', text: `:hourglass_flowing_sand: ${what(req)} running — ${escapeMrkdwn(phase)}` } }, footer(req)],
  };
}

const mark = (ok: boolean | null) => (ok === true ? ':white_check_mark:' : ok === false ? ':x:' : ':grey_question: not run —');

/** The verdict: each check by name with what it found, the RTO by phase, and where the scratch cluster went. */
export function pitrTestFinished(req: PitrTestInfo, v: PitrTestVerdict, escalation: string | null): ChannelMessage {
  const failed = v.checks.find((c) => c.ok === false) ?? v.checks.find((c) => c.ok === null && !v.passed);
  const notRun = v.checks.find((c) => c.ok === null);
  const head = v.passed
    ? notRun
      ? `:warning: ${what(req)} passed, but one check did not run (${notRun.name}: ${escapeMrkdwn(notRun.detail.replace(/^not run: /, ''))}): recovered to ${v.at} from \`${v.baseId}\``
      : `:white_check_mark: ${what(req)} passed: recovered to ${v.at} from \`${v.baseId}\``
    : `:x: ${what(req)} FAILED: ${failed ? `${failed.name}: ${escapeMrkdwn(failed.detail)}` : 'see the checks below'}`;
  const checks = v.checks.map((c) => `${mark(c.ok)} *${c.name}*${c.ok === null ? '' : ':'} ${escapeMrkdwn(c.detail.replace(/^not run: /, ''))}`);
  const fields = [
    `*RTO (fetch + replay + checks)*\n${formatDuration(v.rtoMs)}`,
    `*Fetch*\n${formatDuration(v.phasesMs.fetch)} (base backup and ${v.wal.segments} WAL segment(s), ${formatBytes(v.wal.bytes)})`,
    `*Replay*\n${formatDuration(v.phasesMs.replay)}`,
    `*Checks*\n${formatDuration(v.phasesMs.checks)}`,
  ];
  return {
    text: v.passed
      ? `PITR restore test of ${req.target} passed (recovered to ${v.at})`
      : `PITR restore test of ${req.target} FAILED: ${failed?.name ?? ''}: ${failed?.detail ?? ''}`,
    blocks: [
      { type: 'section', text: { type: 'mrkdwn', text: head.slice(0, 2900) } },
      { type: 'section', text: { type: 'mrkdwn', text: checks.join('\n').slice(0, 2900) || 'No check ran.' } },
      { type: 'section', fields: fields.map((text) => ({ type: 'mrkdwn', text })) },
      footer(req, ` · scratch cluster ${v.scratchRemoved ? 'removed' : '*NOT removed*'}${escalation ? ` · ${escalation}` : ''}`),
    ],
  };
}

/** A test that could not run at all (no base backup, the server major not installed, the job cancelled). */
export function pitrTestError(req: PitrTestInfo, reason: string, escalation: string | null): ChannelMessage {
  return {
    text: `PITR restore test of ${req.target} could not run: ${reason}`,
    blocks: [
      { type: 'section', text: { type: 'mrkdwn', text: `:x: ${what(req)} could not run: ${escapeMrkdwn(reason)}` } },
      footer(req, escalation ? ` · ${escalation}` : ''),
    ],
  };
}
