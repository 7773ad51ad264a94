import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliRestore } from '../../src/cli/restore-cli.ts';
import { loadConfig } from '../../src/config.ts';
import { createLogger } from '../../src/logger.ts';
import { LocalStorage } from '../../src/storage/index.ts';

/**
 * `pg-backup-bot restore drop`: a database a replacement kept (`<name>_replaced_<stamp>`) is the only copy of what
 * was written after the backup. In Slack only admins may drop one; the CLI asks for --yes, and says why.
 */
describe('pg-backup-bot restore drop', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pgbb-cli-drop-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  const run = async (args: string[]) => {
    const out: string[] = [];
    const err: string[] = [];
    const code = await cliRestore(args, {
      config: loadConfig({ BACKUP_DIR: dir }, 'offline'),
      storage: new LocalStorage(dir),
      log: createLogger({ level: 'silent' }),
      io: { out: (l) => out.push(l), err: (l) => err.push(l), tty: false },
    });
    return { code, out, err };
  };

  it('refuses a kept …_replaced_… database without --yes, saying what it holds', async () => {
    const refused = await run(['drop', 'shop_replaced_20261205t095546']);
    expect(refused.code).toBe(2);
    expect(refused.err).toEqual([
      '"shop_replaced_20261205t095546" is a database as it was before a replacement: the only copy of whatever was written to it after the backup. Add --yes to drop it.',
    ]);
    // With --yes it goes on to the usual checks: only a database a restore record names is ever dropped.
    const confirmed = await run(['drop', 'shop_replaced_20261205t095546', '--yes']);
    expect(confirmed.code).toBe(1);
    expect(confirmed.err.join('\n')).not.toMatch(/Add --yes/);
  });

  it('speaks of its own commands, not Slack’s, in what it refuses', async () => {
    const option = await run(['shop-20261205T095011Z', '--intoo=shop']);
    expect(option.code).toBe(2);
    expect(option.err.join('\n')).toMatch(/^"--intoo=shop" is not an option of `pg-backup-bot restore`\./);
    const drop = await run(['drop']);
    expect(drop.err.join('\n')).toMatch(/^Name the database to drop: `pg-backup-bot restore list` shows them\./);
    expect([...option.err, ...drop.err].join('\n')).not.toMatch(/\/restore/);
  });
});
