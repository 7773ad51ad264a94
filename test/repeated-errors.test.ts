import { describe, expect, it } from 'vitest';
import { createLogger } from '../src/logger.ts';
import { repeatedErrors } from '../src/repeated-errors.ts';

function capture() {
  const lines: Array<Record<string, unknown>> = [];
  const log = createLogger({ level: 'info', destination: { write: (s: string) => lines.push(JSON.parse(s)) } });
  return { log, lines };
}

describe('repeatedErrors', () => {
  it('logs each distinct error once a minute, then says how many it left out', () => {
    const { log, lines } = capture();
    let t = 0;
    const report = repeatedErrors(log, 'worker error', { now: () => t });
    const refused = new Error('connect ECONNREFUSED 127.0.0.1:6379');
    for (const worker of ['backup', 'health', 'restore']) report(refused, { worker });
    // A different error is its own story.
    report(new Error('READONLY You can not write against a read only replica.'), { worker: 'backup' });
    t = 59_999;
    report(refused, { worker: 'backup' });
    expect(lines.map((l) => [l.msg, (l.err as { message: string }).message])).toEqual([
      ['worker error', 'connect ECONNREFUSED 127.0.0.1:6379'],
      ['worker error', 'READONLY You can not write against a read only replica.'],
    ]);
    expect(lines[0]).toMatchObject({ level: 50, worker: 'backup' });
    t = 60_000;
    report(refused, { worker: 'retention' });
    expect(lines[2]).toMatchObject({ msg: 'worker error (the same error 3 more times in 1 min 0 s, not logged)', notLogged: 3, worker: 'retention' });
    // The count starts again: the next line after a quiet minute has none.
    t = 130_000;
    report(refused);
    expect(lines[3]?.msg).toBe('worker error');
  });

  it('keeps the lines of different messages and different loggers apart', () => {
    const { log, lines } = capture();
    const err = new Error('connect ECONNREFUSED 127.0.0.1:6379');
    repeatedErrors(log, 'queue error', { level: 'warn' })(err);
    repeatedErrors(log, 'redis connection error', { level: 'warn' })(err);
    const other = capture();
    repeatedErrors(other.log, 'queue error', { level: 'warn' })(err);
    expect(lines.map((l) => [l.level, l.msg])).toEqual([
      [40, 'queue error'],
      [40, 'redis connection error'],
    ]);
    expect(other.lines).toHaveLength(1);
  });
});
