import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENV_VARIABLES, parseEnv, withoutEmpty } from '../../src/config-env.ts';

const DIR = 'deploy/systemd';
const UNITS = { bot: 'pg-backup-bot-bot.service', worker: 'pg-backup-bot-worker.service' } as const;
const ENV_FILE = 'pg-backup-bot.env';
/** src/main.ts runService: a stop waits for running jobs at most this long, then exits. */
const SHUTDOWN_BOUND_S = 30;

/** A unit's [Service] settings as systemd reads them: key → every value given, in order. */
function serviceSection(text: string): Map<string, string[]> {
  const settings = new Map<string, string[]>();
  let section = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[(\w+)\]$/.exec(line);
    if (header) {
      section = header[1] ?? '';
      continue;
    }
    const eq = line.indexOf('=');
    if (section !== 'Service' || eq < 0) continue;
    const key = line.slice(0, eq);
    settings.set(key, [...(settings.get(key) ?? []), line.slice(eq + 1)]);
  }
  return settings;
}

/** An EnvironmentFile's assignments (comments and blank lines skipped), and every name it mentions, commented or not. */
function envFile(text: string): { set: Record<string, string>; mentioned: Set<string> } {
  const set: Record<string, string> = {};
  const mentioned = new Set<string>();
  for (const line of text.split('\n')) {
    const commented = /^#\s?([A-Z][A-Z0-9_]*)=/.exec(line);
    if (commented?.[1]) mentioned.add(commented[1]);
    const m = /^([A-Z][A-Z0-9_]*)=(.*)$/.exec(line);
    if (m?.[1] !== undefined && m[2] !== undefined) {
      set[m[1]] = m[2];
      mentioned.add(m[1]);
    }
  }
  return { set, mentioned };
}

const seconds = (v: string | undefined) => {
  const m = /^(\d+)(s|min)?$/.exec(v ?? '');
  return m ? Number(m[1]) * (m[2] === 'min' ? 60 : 1) : Number.NaN;
};

/**
 * deploy/systemd as systemd reads it (`systemd-analyze verify`, Debian package `systemd`: .ci/run installs it),
 * and the settings the bot's behaviour depends on: the verb, an unprivileged user, a stop that waits for the
 * bot's own graceful stop, one metrics port each, BACKUP_DIR writable under ProtectSystem=strict.
 */
describe('the systemd units', () => {
  let work: string;
  const units: Record<keyof typeof UNITS, Map<string, string[]>> = { bot: new Map(), worker: new Map() };
  const one = (kind: keyof typeof UNITS, key: string) => units[kind].get(key)?.at(-1);

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'pgbb-systemd-'));
    for (const kind of ['bot', 'worker'] as const) units[kind] = serviceSection(await readFile(join(DIR, UNITS[kind]), 'utf8'));
  });
  afterAll(() => rm(work, { recursive: true, force: true }));

  it('pass `systemd-analyze verify` without a warning', async () => {
    // verify checks that ExecStart's program exists: the copies point at the node running this test instead of
    // /usr/bin/node (asserted below), so the check passes where node lives elsewhere (nvm, /usr/local/bin).
    const copies: string[] = [];
    for (const file of Object.values(UNITS)) {
      const text = await readFile(join(DIR, file), 'utf8');
      await writeFile(join(work, file), text.replace('ExecStart=/usr/bin/node ', `ExecStart=${process.execPath} `));
      copies.push(join(work, file));
    }
    const r = await execa('systemd-analyze', ['verify', '--man=no', ...copies], { reject: false });
    expect(r.exitCode, r.stderr).toBe(0);
    // Unknown keys and bad values are only warned about (exit 0): none may be left.
    expect(r.stderr).toBe('');
  });

  it('run `node …/bin/pg-backup-bot.js bot|worker` as the unprivileged user, with the env file', () => {
    for (const kind of ['bot', 'worker'] as const) {
      expect(one(kind, 'ExecStart')).toBe(`/usr/bin/node /opt/pg-backup-bot/bin/pg-backup-bot.js ${kind}`);
      expect(one(kind, 'User')).toBe('pg-backup-bot');
      expect(one(kind, 'Group')).toBe('pg-backup-bot');
      expect(one(kind, 'EnvironmentFile')).toBe(`/etc/pg-backup-bot/${ENV_FILE}`);
      expect(one(kind, 'Restart')).toBe('on-failure');
    }
  });

  it('stop with SIGTERM to node alone, and wait longer than its own bounded graceful stop', () => {
    for (const kind of ['bot', 'worker'] as const) {
      expect(one(kind, 'KillSignal')).toBe('SIGTERM');
      // control-group would SIGTERM pg_dump, zstd and age too, failing the jobs node is waiting for.
      expect(one(kind, 'KillMode')).toBe('mixed');
      expect(seconds(one(kind, 'TimeoutStopSec'))).toBeGreaterThanOrEqual(SHUTDOWN_BOUND_S * 2);
    }
  });

  it('give the bot and the worker different metrics ports, and leave the port out of the shared env file', async () => {
    const port = (kind: keyof typeof UNITS) => units[kind].get('Environment')?.find((e) => e.startsWith('METRICS_PORT='));
    expect(port('bot')).toBe('METRICS_PORT=9464');
    expect(port('worker')).toBe('METRICS_PORT=9465');
    const { set } = envFile(await readFile(join(DIR, ENV_FILE), 'utf8'));
    // EnvironmentFile= overrides Environment=: a value there would give both units one port.
    expect(set).not.toHaveProperty('METRICS_PORT');
    expect(set).not.toHaveProperty('TMPDIR');
  });

  it('are hardened, with BACKUP_DIR and the temp dir writable', async () => {
    const { set } = envFile(await readFile(join(DIR, ENV_FILE), 'utf8'));
    for (const kind of ['bot', 'worker'] as const) {
      for (const [key, value] of Object.entries({ NoNewPrivileges: 'yes', ProtectSystem: 'strict', PrivateTmp: 'yes', ProtectHome: 'yes' })) {
        expect(one(kind, key), `${kind}: ${key}`).toBe(value);
      }
      expect(one(kind, 'CapabilityBoundingSet')).toBe('');
      const writable = (units[kind].get('ReadWritePaths') ?? []).flatMap((v) => v.split(/\s+/));
      expect(
        writable.some((dir) => set.BACKUP_DIR === dir || set.BACKUP_DIR?.startsWith(`${dir}/`)),
        `${kind}: ${writable}`,
      ).toBe(true);
      // PrivateTmp= gives the unit writable /tmp and /var/tmp of its own.
      expect(units[kind].get('Environment')).toContain('TMPDIR=/var/tmp');
    }
  });
});

describe('the example EnvironmentFile', () => {
  it('mentions every variable of the env contract, and what it sets parses', async () => {
    const { set, mentioned } = envFile(await readFile(join(DIR, ENV_FILE), 'utf8'));
    for (const name of ENV_VARIABLES) expect(mentioned, name).toContain(name);
    expect(parseEnv(withoutEmpty(set)).problems).toEqual([]);
  });

  it('has no value followed by a comment (systemd would keep the comment as part of the value)', async () => {
    const text = await readFile(join(DIR, ENV_FILE), 'utf8');
    for (const line of text.split('\n').filter((l) => /^#?[A-Z][A-Z0-9_]*=/.test(l))) expect(line, line).not.toMatch(/\s#/);
  });
});
