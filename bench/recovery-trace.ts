/**
 * Where a recovery's time goes, read from the recovered server's own log (log_line_prefix '%m '): from the server's
 * start to the first WAL segment restored from the archive, the cadence of the segments after it (restore_command
 * runs once per segment and recovery waits for it), and from the last one to the end of recovery. Both restore legs
 * of bench/pitr.ts are read the same way, so the two restore_commands are compared segment by segment.
 */
export interface RecoveryTrace {
  /** Segments restored from the archive (`restored log file … from archive`). */
  segments: number;
  /** Server start (its first log line) to the first segment restored. */
  toFirst: number;
  /** First to last segment restored, and the mean and largest step between two. */
  span: number;
  meanStep: number;
  maxStep: number;
  /** Last segment restored to "database system is ready to accept connections" (end of recovery, promotion). */
  toReady: number;
  /** What the server itself reports for redo ("redo done at … elapsed: N s"), when it does. */
  redoElapsed: number | null;
}

const STAMP = /^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) (\S+)/;

function stamp(line: string): number | null {
  const m = STAMP.exec(line);
  if (!m?.[1]) return null;
  const zone = m[2] === 'UTC' || m[2] === 'GMT' ? 'Z' : '';
  const t = Date.parse(`${m[1].replace(' ', 'T')}${zone}`);
  return Number.isNaN(t) ? null : t;
}

export function recoveryTrace(log: string): RecoveryTrace | null {
  const lines = log.split('\n').filter((l) => stamp(l) !== null);
  const first = lines[0];
  const restored = lines.filter((l) => /restored log file "[0-9A-F]{24}" from archive/.test(l)).map((l) => stamp(l) as number);
  const ready = lines.find((l) => /database system is ready to accept connections/.test(l));
  if (!first || restored.length === 0 || !ready) return null;
  const steps = restored.slice(1).map((t, i) => t - (restored[i] as number));
  const redo = /redo done at .*elapsed: ([\d.]+) s/.exec(log);
  const s = (ms: number) => ms / 1000;
  return {
    segments: restored.length,
    toFirst: s((restored[0] as number) - (stamp(first) as number)),
    span: s((restored.at(-1) as number) - (restored[0] as number)),
    meanStep: steps.length ? s(steps.reduce((a, b) => a + b, 0) / steps.length) : 0,
    maxStep: steps.length ? s(Math.max(...steps)) : 0,
    toReady: s((stamp(ready) as number) - (restored.at(-1) as number)),
    redoElapsed: redo?.[1] ? Number(redo[1]) : null,
  };
}

export function traceText(t: RecoveryTrace | null): string {
  if (!t) return 'no trace (the log names no restored segment)';
  const f = (v: number) => v.toFixed(2);
  return `${t.segments} segments; start → first ${f(t.toFirst)} s; first → last ${f(t.span)} s (step mean ${f(t.meanStep)} s, max ${f(t.maxStep)} s); last → ready ${f(t.toReady)} s${t.redoElapsed === null ? '' : `; redo ${f(t.redoElapsed)} s as the server counts it`}`;
}
