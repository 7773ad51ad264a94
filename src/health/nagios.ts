import type { ConditionResult } from './types.ts';

export type NagiosExitCode = 0 | 1 | 2;

function exitCodeOf(r: ConditionResult): NagiosExitCode {
  if (r.status === 'ok') return 0;
  // Nagios has no "error" state: a failing backup must not look milder than a full disk. A quiet failure (nothing
  // paged: a first backup not yet due, a slot the bot could not read) is a warning, as /backup health shows it.
  return r.severity === 'warning' || r.quiet ? 1 : 2;
}

const WORDS: Record<NagiosExitCode, string> = { 0: 'OK', 1: 'WARNING', 2: 'CRITICAL' };

// '|' starts performance data in plugin output and a newline starts the long text: neither may come from evidence.
function clean(text: string): string {
  return text.replace(/\|/g, '/').replace(/\s*[\r\n]+\s*/g, ' ');
}

/**
 * Nagios plugin output: one line per condition, `OK shop stale: newest backup 3 h 0 min old (…)`, worst first
 * because Nagios shows the first line as the service status; exit 0 all ok, 1 any warning, 2 any critical.
 */
export function nagiosReport(perTarget: Array<{ target: string; results: ConditionResult[] }>): { lines: string[]; exitCode: NagiosExitCode } {
  const rows = perTarget.flatMap(({ target, results }) =>
    results.map((r) => ({
      code: exitCodeOf(r),
      // OK for want of anything to judge says so: it is not a check that passed.
      line: `${WORDS[exitCodeOf(r)]} ${target} ${r.condition}: ${r.unjudged && !/^not (judged|checked)\b/.test(r.evidence) ? 'not judged: ' : ''}${clean(r.evidence)}`,
    })),
  );
  // Array.prototype.sort is stable: within one state the lines keep target and condition order.
  rows.sort((a, b) => b.code - a.code);
  const exitCode = Math.max(0, ...rows.map((r) => r.code)) as NagiosExitCode;
  return { lines: rows.map((r) => r.line), exitCode };
}
