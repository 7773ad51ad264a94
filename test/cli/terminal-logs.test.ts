import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/logger.ts';
import { humanLogLine } from '../../src/log-lines.ts';
import { BotError } from '../../src/errors.ts';
import { cli } from '../support/app-backups.ts';

/** `script` (util-linux, as in test/dev/demo-signals.test.ts) runs a command on a pseudo-terminal, as a person does. */
const onTerminal = (command: string, env: Record<string, string>) =>
  execa('script', ['-qec', command, '/dev/null'], { env: { PATH: process.env.PATH ?? '', ...env }, extendEnv: false, reject: false, stdin: 'ignore' });

/** What a JSON log line looks like, and a stack frame: neither belongs on a person's terminal. */
const JSON_LINE = /^\{"level":/m;
const STACK_FRAME = /^\s+at /m;

describe('log lines on a terminal', () => {
  it('are `level: message (error)`; anything that is not a JSON line passes as it is', () => {
    const lines: string[] = [];
    const log = createLogger({ level: 'info', destination: { write: (l: string) => void lines.push(humanLogLine(l)) } });
    const cause = new Error('connect ECONNREFUSED 127.0.0.1:1');
    log.warn(
      { err: new BotError('pg_unreachable', 'Could not connect.', { cause, detail: 'connect ECONNREFUSED 127.0.0.1:1\npg_dump: more' }) },
      'backup failed',
    );
    log.info('listening');
    log.error(new Error('only an error'));
    log.warn({ err: new Error('already said') }, 'already said');
    expect(lines).toEqual(['warn: backup failed (connect ECONNREFUSED 127.0.0.1:1)\n', 'info: listening\n', 'error: only an error\n', 'warn: already said\n']);
    expect(humanLogLine('not json')).toBe('not json\n');
  });
});

describe('log lines after the terminal has closed', () => {
  it('are dropped: the log call neither throws nor ends the process (the demo and the CLI clean up after a hangup)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pgbb-hup-'));
    const record = join(dir, 'record');
    try {
      const terminal = execa('script', ['-qefc', `node --import tsx test/fixtures/log-after-hangup.ts ${record}`, '/dev/null'], {
        reject: false,
        stdin: 'pipe',
      });
      let out = '';
      terminal.stdout?.on('data', (c: Buffer) => (out += c.toString()));
      const end = Date.now() + 30_000;
      while (!out.includes('ready') && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
      expect(out).toMatch(/warn: on the terminal/);
      // The terminal goes away: `script` dies, its pty closes, and the kernel hangs up the session.
      terminal.kill('SIGKILL');
      await terminal;
      let said = '';
      while (!said && Date.now() < end) {
        said = await readFile(record, 'utf8').catch(() => '');
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(said).toBe('logged\n');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);
});

describe('the CLI and the demo on a terminal', () => {
  let dir: string;
  let env: Record<string, string>;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pgbb-tty-'));
    // A backup that fails (nothing listens on port 1), logged at warn so that its log line is written.
    await writeFile(join(dir, 'plain.yml'), 'encryption: none\n');
    env = { DATABASE_URL: 'postgres://pgbb@127.0.0.1:1/shop', TARGET_NAME: 'shop', BACKUP_DIR: dir, BOT_CONFIG: join(dir, 'plain.yml'), LOG_LEVEL: 'warn' };
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('a failing CLI backup prints sentences and log lines, no JSON and no stack trace', async () => {
    const run = await onTerminal('node bin/pg-backup-bot.js backup', env);
    expect(run.exitCode).toBe(1);
    expect(run.stdout).toMatch(/^warn: backup failed; discarding what was written \(connect ECONNREFUSED 127\.0\.0\.1:1/m);
    expect(run.stdout).toMatch(/^Backup FAILED: Could not connect to the database server at 127\.0\.0\.1:1/m);
    expect(run.stdout).not.toMatch(JSON_LINE);
    expect(run.stdout).not.toMatch(STACK_FRAME);
  });

  it('off a terminal the same run logs JSON, for whatever collects it', async () => {
    const run = await cli(['backup'], env);
    expect(run.exitCode).toBe(1);
    expect(run.stderr).toMatch(JSON_LINE);
    expect(run.stderr).toMatch(/^Backup FAILED: /m);
  });

  it('the demo answers a command that fails with its sentence and a log line, no JSON', async () => {
    const run = await onTerminal("node bin/pg-backup-bot.js demo '/backup now nosuchtarget'", {});
    expect(run.exitCode).toBe(0);
    expect(run.stdout).toMatch(/^warn: command failed \(There is no target named "nosuchtarget"\. Known targets: shop\.\)/m);
    expect(run.stdout).toMatch(/\(only visible to you\) ⚠️ There is no target named "nosuchtarget"/);
    expect(run.stdout).not.toMatch(JSON_LINE);
    expect(run.stdout).not.toMatch(STACK_FRAME);
  }, 120_000);
});
