import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../src/logger.ts';

describe('createLogger', () => {
  it('redacts secrets wherever a config object carries them', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _enc, cb) {
        lines.push(String(chunk));
        cb();
      },
    });
    const log = createLogger({ level: 'trace', destination: sink });
    log.info({ config: { slack: { botToken: 'xoxb-SECRET1', signingSecret: 'SECRET2' }, pagerduty: { routingKey: 'SECRET3' } }, target: { url: 'postgres://u:SECRET4@h/db' } }, 'start');
    log.info({ password: 'SECRET5', env: { PGPASSWORD: 'SECRET6' } }, 'child');
    const out = lines.join('');
    expect(out).toContain('start');
    for (const s of ['SECRET1', 'SECRET2', 'SECRET3', 'SECRET4', 'SECRET5', 'SECRET6']) expect(out).not.toContain(s);
  });
});

describe('redaction of strings', () => {
  it('scrubs passwords in URLs and Slack tokens inside messages and errors', () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _enc, cb) {
        lines.push(String(chunk));
        cb();
      },
    });
    const log = createLogger({ level: 'info', destination: sink });
    log.error({ err: new Error('connect to postgres://backup:SECRET7@db:5432/x failed') }, 'token xoxb-123-SECRET8 rejected');
    const out = lines.join('');
    expect(out).toContain('failed');
    expect(out).not.toContain('SECRET7');
    expect(out).not.toContain('SECRET8');
  });
});
