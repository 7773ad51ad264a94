import type { Logger } from '../logger.ts';

/** A caller's progress callback that can never break the work it reports on: what it throws is logged, not raised. */
export function safeProgress<P>(callback: ((p: P) => void) | undefined, log: Logger): (p: P) => void {
  return (p) => {
    try {
      callback?.(p);
    } catch (err) {
      log.warn({ err }, 'progress callback threw');
    }
  };
}
