import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliList } from '../../src/cli/backup-cli.ts';
import { cliRestore } from '../../src/cli/restore-cli.ts';
import { loadConfig } from '../../src/config.ts';
import { createLogger } from '../../src/logger.ts';
import { LocalStorage } from '../../src/storage/index.ts';

/**
 * At 3 a.m. on a new host, a wrong or missing BACKUP_DIR must not read as "no backups", and a backup whose manifest
 * is gone must not read as "no such backup": each is said for what it is.
 */
describe('backups that are not where the CLI looks', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pgbb-cli-missing-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  const deps = (backupDir: string) => {
    const out: string[] = [];
    const err: string[] = [];
    return {
      out,
      err,
      deps: {
        config: loadConfig({ BACKUP_DIR: backupDir }, 'offline'),
        storage: new LocalStorage(backupDir),
        log: createLogger({ level: 'silent' }),
        io: { out: (l: string) => out.push(l), err: (l: string) => err.push(l), tty: false },
      },
    };
  };

  it('a BACKUP_DIR that does not exist fails list and restore, naming it', async () => {
    const gone = join(dir, 'nodir');
    const list = deps(gone);
    expect(await cliList([], list.deps)).toBe(1);
    expect(list.out).toEqual([]);
    expect(list.err).toEqual([
      `BACKUP_DIR ${gone} does not exist: no backup was ever written there. If the backups are elsewhere, set BACKUP_DIR to that directory.`,
    ]);
    const restore = deps(gone);
    expect(await cliRestore(['shop-20261205T095011Z'], restore.deps)).toBe(1);
    expect(restore.err.join('\n')).toContain(
      `There is no finished backup shop-20261205T095011Z of shop: BACKUP_DIR ${gone} does not exist: no backup was ever written there.`,
    );
  });

  it('a BACKUP_DIR set to one target’s directory names the directory of all targets (QA: "No finished backups yet")', async () => {
    const root = join(dir, 'root');
    const shop = join(root, 'shop');
    await mkdir(join(shop, 'shop-20261205T095011Z'), { recursive: true });
    await writeFile(join(shop, 'shop-20261205T095011Z', 'manifest.json'), '{}');
    const list = deps(shop);
    expect(await cliList([], list.deps)).toBe(1);
    expect(list.err).toEqual([
      `BACKUP_DIR ${shop} holds backups itself (shop-20261205T095011Z): it is one target's directory, not the directory of all targets; set BACKUP_DIR to ${root}.`,
    ]);
  });

  it('an empty BACKUP_DIR (a disk not mounted on its mount point) is said to be empty, not "no backups yet"', async () => {
    const mountPoint = join(dir, 'mnt');
    await mkdir(mountPoint);
    const said = `BACKUP_DIR ${mountPoint} is empty: no backup was ever written there, or the disk or share that holds them is not mounted (\`findmnt ${mountPoint}\`). If the backups are elsewhere, set BACKUP_DIR to that directory.`;
    const list = deps(mountPoint);
    expect(await cliList([], list.deps)).toBe(1);
    expect(list.err).toEqual([said]);
    const restore = deps(mountPoint);
    expect(await cliRestore(['shop-20261205T095011Z'], restore.deps)).toBe(1);
    expect(restore.err.join('\n')).toContain(`There is no finished backup shop-20261205T095011Z of shop: ${said}`);
  });

  it('a backup directory with its files but no manifest is called unfinished, with what it holds', async () => {
    const root = join(dir, 'backups');
    await mkdir(join(root, 'shop', 'shop-20261205T095005Z'), { recursive: true });
    await writeFile(join(root, 'shop', 'shop-20261205T095005Z', 'database.pgdump.zst.age'), 'x');
    const restore = deps(root);
    expect(await cliRestore(['shop-20261205T095005Z'], restore.deps)).toBe(1);
    expect(restore.err.join('\n')).toContain(
      `Backup shop-20261205T095005Z of shop is not finished: ${join(root, 'shop', 'shop-20261205T095005Z')} holds database.pgdump.zst.age but no manifest.json`,
    );
    // An id of which nothing is there at all is still simply not there.
    const none = deps(root);
    expect(await cliRestore(['shop-20261205T090000Z'], none.deps)).toBe(1);
    expect(none.err.join('\n')).toContain('There is no finished backup shop-20261205T090000Z of shop.');
  });
});
