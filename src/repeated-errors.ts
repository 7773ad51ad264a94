import { formatDuration } from './format.ts';
import type { Logger } from './logger.ts';

/**
 * Errors that repeat, logged once per minute each. While Redis is down every connection, every queue and every
 * worker reports each reconnect attempt: about 1,200 lines in 20 s from one `worker` process, most of them stack
 * traces BullMQ wrote with console.error (not JSON) for queues without an error listener. One line per distinct
 * error per minute says the same; the next one says how many were left out. Keyed by the line's message and the
 * error's message (not its source: eight workers losing one Redis are one story), per logger.
 */

const WINDOW_MS = 60_000;
/** More distinct errors than this in a minute: the oldest are forgotten (and may be logged again). */
const MAX_KEYS = 200;

interface Seen {
  at: number;
  repeats: number;
}
const byLogger = new WeakMap<Logger, Map<string, Seen>>();

export function repeatedErrors(
  log: Logger,
  msg: string,
  options: { level?: 'warn' | 'error'; windowMs?: number; now?: () => number } = {},
): (err: Error, fields?: Record<string, unknown>) => void {
  const { level = 'error', windowMs = WINDOW_MS, now = Date.now } = options;
  return (err, fields = {}) => {
    const seen = byLogger.get(log) ?? new Map<string, Seen>();
    byLogger.set(log, seen);
    const key = `${msg}\0${err?.message}`;
    const last = seen.get(key);
    const at = now();
    if (last && at - last.at < windowMs) {
      last.repeats++;
      return;
    }
    seen.delete(key);
    if (seen.size >= MAX_KEYS) seen.delete(seen.keys().next().value as string);
    seen.set(key, { at, repeats: 0 });
    const left = last?.repeats ?? 0;
    const line = left > 0 ? `${msg} (the same error ${left} more times in ${formatDuration(at - (last?.at ?? at))}, not logged)` : msg;
    log[level]({ err, ...fields, ...(left > 0 ? { notLogged: left } : {}) }, line);
  };
}
