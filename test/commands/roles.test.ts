import { describe, expect, it, vi } from 'vitest';
import { loadConfig, type Config } from '../../src/config.ts';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createAuditLog } from '../../src/audit.ts';
import { parseBackupText } from '../../src/commands/backup-text.ts';
import { backupNeed, guardCommand, requiredRole } from '../../src/commands/guard.ts';
import { createLogger } from '../../src/logger.ts';
import { cachedGroups, decide, roleOf } from '../../src/commands/roles.ts';

const base = loadConfig({ SLACK_BOT_TOKEN: 'xoxb-1', SLACK_SIGNING_SECRET: 's', DATABASE_URL: 'postgres://h/shop' }, 'offline');
const withRoles: Config = { ...base, roles: { viewer: ['U0VIEW'], operator: ['U0OPS', 'S0ONCALL'], admin: ['U0ADMIN'] } };

describe('roles', () => {
  it('without role config: everyone may list and back up, nobody may restore into an existing database', async () => {
    const role = await roleOf(base, 'U0ANYONE');
    expect(role).toBe('operator');
    expect(decide(role, 'operator', '`/backup now`', base).allowed).toBe(true);
    expect(decide(role, 'admin', 'a restore into an existing database', base).allowed).toBe(false);
  });

  it('maps users and user groups to roles, each including the ones below it', async () => {
    const groups = cachedGroups(async (g) => (g === 'S0ONCALL' ? ['U0PAGER'] : []));
    expect(await roleOf(withRoles, 'U0VIEW', groups)).toBe('viewer');
    expect(await roleOf(withRoles, 'U0PAGER', groups)).toBe('operator');
    expect(await roleOf(withRoles, 'U0ADMIN', groups)).toBe('admin');
    expect(await roleOf(withRoles, 'U0STRANGER', groups)).toBeNull();
    expect(decide('admin', 'viewer', 'x', withRoles).allowed).toBe(true);
  });

  it('asks Slack once for a burst of commands, refreshes ahead of expiry, and never uses an answer older than the TTL', async () => {
    let calls = 0;
    let members = ['U0PAGER'];
    let release: () => void = () => undefined;
    const groups = cachedGroups(async () => {
      calls++;
      await new Promise<void>((r) => (release = r));
      return members;
    }, 1000);
    const burst = Array.from({ length: 50 }, () => groups('S0ONCALL'));
    release();
    expect(new Set(await Promise.all(burst))).toEqual(new Set([['U0PAGER']]));
    expect(calls).toBe(1);
    // In the last fifth of its life the entry answers at once while one refresh runs behind it.
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      const t0 = Date.now();
      vi.setSystemTime(t0 + 900);
      members = ['U0NEW'];
      expect(await groups('S0ONCALL')).toEqual(['U0PAGER']);
      expect(await groups('S0ONCALL')).toEqual(['U0PAGER']);
      expect(calls).toBe(2);
      release();
      await new Promise((r) => setImmediate(r));
      expect(await groups('S0ONCALL')).toEqual(['U0NEW']);
      // Expired: the command waits for Slack rather than use what it knew.
      vi.setSystemTime(t0 + 5000);
      members = ['U0LATEST'];
      const waiting = groups('S0ONCALL');
      release();
      expect(await waiting).toEqual(['U0LATEST']);
      expect(calls).toBe(3);
    } finally {
      vi.useRealTimers();
    }
  });

  it('says which role a refused request needs and who grants it', () => {
    const d = decide('viewer', 'operator', '`/backup now`', withRoles);
    expect(d.allowed).toBe(false);
    expect(d.reason).toMatch(/`\/backup now` needs the \*operator\* role; you have \*viewer\*\. Ask an admin \(<@U0ADMIN>\)/);
  });

  it.each([
    ['/backup', 'now', 'operator'],
    ['/backup', 'list', 'viewer'],
    ['/backup', 'health', 'viewer'],
    ['/backup', 'diff shop-20261124T000000Z shop-20261125T000000Z', 'viewer'],
    ['/backup', 'audit 5', 'admin'],
    ['/backup', 'checklist daily', 'operator'],
    ['/restore-test', 'latest', 'operator'],
    ['/restore-test', 'history', 'viewer'],
    ['/restore', 'shop-20261124T000000Z --table=t', 'operator'],
    ['/restore', 'shop-20261124T000000Z --table=t --into=prod', 'admin'],
  ])('%s %s needs %s', (command, text, role) => {
    expect(requiredRole(command, text).role).toBe(role);
  });
});

describe('guardCommand', () => {
  it('parses the text once: the role comes from the request the handler then receives', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pgbb-guard-'));
    try {
      const log = createLogger({ level: 'silent' });
      const audit = createAuditLog(dir, log);
      let parses = 0;
      const received: unknown[] = [];
      const handler = guardCommand(
        {
          command: '/backup',
          parse: (text) => {
            parses++;
            return parseBackupText(text);
          },
          need: backupNeed,
          handle: async (_input, req) => {
            received.push(req);
            return { text: 'queued', jobId: 'backup-shop-1' };
          },
        },
        { config: withRoles, audit, log },
      );
      expect((await handler({ text: 'now shop', userId: 'U0OPS', userName: 'ops' })).text).toBe('queued');
      expect(parses).toBe(1);
      expect(received).toEqual([parseBackupText('now shop')]);
      // A viewer is refused from the same single parse, and the handler never runs.
      expect((await handler({ text: 'now shop', userId: 'U0VIEW', userName: 'view' })).text).toMatch(/Refused: .*operator/);
      expect(parses).toBe(2);
      expect(received).toHaveLength(1);
      await audit.flush();
      const lines = await audit.tail(10);
      expect(lines.map((l) => [l.userId, l.decision, l.jobId])).toEqual([
        ['U0OPS', 'allowed', 'backup-shop-1'],
        ['U0VIEW', 'refused', null],
      ]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
