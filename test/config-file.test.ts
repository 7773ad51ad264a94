import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.ts';
import { BotError } from '../src/errors.ts';

describe('BOT_CONFIG file', () => {
  let dir: string;
  const base = { SLACK_BOT_TOKEN: 'xoxb-1', SLACK_SIGNING_SECRET: 's', DATABASE_URL: 'postgres://h/shop' };
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pgbb-cfg-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads smoke queries and users allowed to restore, merged with RESTORE_ALLOWED_USERS', async () => {
    const file = join(dir, 'ok.yml');
    await writeFile(file, 'restoreTest:\n  jobs: 3\n  smokeQueries:\n    - name: recent orders\n      sql: select count(*) from shop.orders\nrestore:\n  allowedUsers: [U0ADMIN1]\n');
    const c = loadConfig({ ...base, BOT_CONFIG: file, RESTORE_ALLOWED_USERS: 'U0ADMIN2, U0ADMIN1' });
    expect(c.restoreTest).toEqual({ smokeQueries: [{ name: 'recent orders', sql: 'select count(*) from shop.orders' }], jobs: 3 });
    expect(c.restore.allowedUsers).toEqual(['U0ADMIN1', 'U0ADMIN2']);
  });

  it('defaults to nobody allowed to restore into an existing database', () => {
    expect(loadConfig(base).restore.allowedUsers).toEqual([]);
  });

  it('names the line and the key of every mistake', async () => {
    const file = join(dir, 'bad.yml');
    await writeFile(file, 'restoreTest:\n  jobs: zero\n  smokeQueries:\n    - name: x\nrestor:\n  allowedUsers: []\n');
    let err: unknown;
    try {
      loadConfig({ ...base, BOT_CONFIG: file });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(BotError);
    const msg = (err as BotError).userMessage;
    expect(msg).toMatch(/bad\.yml line 2, restoreTest\.jobs/);
    expect(msg).toMatch(/bad\.yml line 4, restoreTest\.smokeQueries\.0\.sql/);
    expect(msg).toMatch(/\(top level\).*restor/);
  });

  it('reports YAML syntax errors with their line', async () => {
    const file = join(dir, 'syntax.yml');
    await writeFile(file, 'restore:\n  allowedUsers: [U1\n');
    expect(() => loadConfig({ ...base, BOT_CONFIG: file })).toThrow(/syntax\.yml line \d/);
  });
});
