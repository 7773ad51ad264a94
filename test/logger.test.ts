import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../src/logger.ts';

/** A destination that keeps every line the logger writes. */
function captured(): { lines: string[]; sink: Writable } {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      lines.push(String(chunk));
      cb();
    },
  });
  return { lines, sink };
}

describe('createLogger', () => {
  it('redacts secrets wherever a config object carries them', async () => {
    const { lines, sink } = captured();
    const log = createLogger({ level: 'trace', destination: sink });
    log.info(
      {
        config: { slack: { botToken: 'xoxb-SECRET1', signingSecret: 'SECRET2' }, pagerduty: { routingKey: 'SECRET3' } },
        target: { url: 'postgres://u:SECRET4@h/db' },
      },
      'start',
    );
    log.info({ password: 'SECRET5', env: { PGPASSWORD: 'SECRET6' } }, 'child');
    const out = lines.join('');
    expect(out).toContain('start');
    for (const s of ['SECRET1', 'SECRET2', 'SECRET3', 'SECRET4', 'SECRET5', 'SECRET6']) expect(out).not.toContain(s);
  });
});

describe('redaction of strings', () => {
  it('scrubs passwords in URLs and Slack tokens inside messages and errors', () => {
    const { lines, sink } = captured();
    const log = createLogger({ level: 'info', destination: sink });
    log.error({ err: new Error('connect to postgres://backup:SECRET7@db:5432/x failed') }, 'token xoxb-123-SECRET8 rejected');
    const out = lines.join('');
    expect(out).toContain('failed');
    expect(out).not.toContain('SECRET7');
    expect(out).not.toContain('SECRET8');
  });
});

describe('errors whose class has a getter-only name', () => {
  it('logs an ioredis ReplyError (an OOM answer) with its type and scrubbed message instead of throwing', () => {
    // ioredis's ReplyError (from redis-errors) defines `name` as a getter on its prototype, as this one does.
    class ReplyError extends Error {
      override get name() {
        return 'ReplyError';
      }
    }
    const { lines, sink } = captured();
    const log = createLogger({ level: 'info', destination: sink });
    const err = new ReplyError("OOM command not allowed when used memory > 'maxmemory'. redis://u:SECRET9@h");
    expect(() => log.warn({ err }, 'could not write')).not.toThrow();
    const line = JSON.parse(lines.join('')) as { err: { type: string; message: string } };
    expect(line.err.type).toBe('ReplyError');
    expect(line.err.message).toMatch(/^OOM command not allowed/);
    expect(line.err.message).not.toContain('SECRET9');
  });
});

describe('a DOMException, alone or inside another error', () => {
  it('is logged with its name, message and code instead of throwing (QA: a Slack timeout failed the job that logged it)', () => {
    // What AbortSignal.timeout and fetch give: its name, message and code are getters that refuse any other object.
    const timeout = new DOMException('The operation was aborted due to timeout', 'TimeoutError');
    const wrapped = Object.assign(new Error('A request error occurred: timeout redis://u:SECRET7@h'), {
      code: 'slack_webapi_request_error',
      original: timeout,
    });
    const { lines, sink } = captured();
    const log = createLogger({ level: 'info', destination: sink });
    expect(() => log.warn({ err: wrapped }, 'could not post to the channel')).not.toThrow();
    expect(() => log.warn({ err: timeout }, 'timed out')).not.toThrow();
    const [first, second] = lines.map((l) => JSON.parse(l) as { err: Record<string, unknown> });
    expect(first?.err).toMatchObject({ code: 'slack_webapi_request_error', original: { type: 'DOMException', name: 'TimeoutError', code: 23 } });
    expect(String(first?.err.message)).not.toContain('SECRET7');
    expect(second?.err).toMatchObject({ type: 'DOMException', name: 'TimeoutError', message: 'The operation was aborted due to timeout' });
  });
});
