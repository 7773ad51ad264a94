import { pino, type DestinationStream } from 'pino';

/**
 * Log lines for a person at a terminal. The CLI and the demo log to stderr; there a JSON line with a stack trace
 * says nothing the sentence they print does not, and hides it. On a terminal each line becomes
 * `level: message (error)`; anywhere else (a file, journald, a pipe) it stays the JSON a machine reads.
 */

const LEVELS: Record<number, string> = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal' };

/** One pino JSON line as a person reads it: `warn: backup failed; discarding what was written (connect ECONNREFUSED …)`. */
export function humanLogLine(json: string): string {
  let entry: { level?: unknown; msg?: unknown; err?: { message?: unknown } | null; reason?: unknown };
  try {
    entry = JSON.parse(json) as typeof entry;
  } catch {
    return json.endsWith('\n') ? json : `${json}\n`;
  }
  const level = LEVELS[Number(entry.level)] ?? String(entry.level ?? 'log');
  const msg = typeof entry.msg === 'string' ? entry.msg : '';
  // The first line of the error's message: a tool's output tail or a stack is for the JSON logs.
  // `reason`: a request that could not be, logged as its sentence (errors.ts errorLogFields).
  const message = typeof entry.err?.message === 'string' ? entry.err.message : typeof entry.reason === 'string' ? entry.reason : '';
  const err = message.split('\n')[0] ?? '';
  const detail = err && !msg.includes(err) ? (msg ? ` (${err})` : err) : '';
  return `${level}: ${msg}${detail}\n`;
}

/**
 * stderr, synchronously (a CLI exits right after its last line): human lines on a terminal, JSON elsewhere.
 * A line that cannot be written is dropped. Once the terminal has closed every write fails with EIO, and pino
 * re-throws any failure but EPIPE out of the log call itself: a warning logged while the demo or the CLI cleans up
 * after a hangup would then end the process before its throwaway PostgreSQL is stopped. Unwritten lines are held
 * up to 1 MiB, then dropped.
 */
export function stderrLogDestination(tty = Boolean(process.stderr.isTTY)): DestinationStream {
  const stderr = pino.destination({ dest: 2, sync: true, maxLength: 1024 * 1024 });
  stderr.on('error', () => undefined);
  return tty ? { write: (line: string) => stderr.write(humanLogLine(line)) } : stderr;
}
