import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { isBotError } from '../../src/errors.ts';
import { storageMarkProblem } from '../../src/storage/storage-mark.ts';

/**
 * A BACKUP_DIR the bot cannot make its mark in, at first use, is said as a storage problem with the path and what
 * went wrong, not "Something unexpected went wrong inside the bot" (QA: a read-only BACKUP_DIR at first start).
 */
describe('the storage mark at first use', () => {
  const redis = new Redis(inject('redisUrl'));
  const prefix = `{pgbbt${randomBytes(3).toString('hex')}}`;
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pgbb-mark-'));
  });
  afterAll(async () => {
    redis.disconnect();
    await rm(dir, { recursive: true, force: true });
  });

  it('a BACKUP_DIR that cannot be made is refused with a sentence naming it', async () => {
    // A file where the directory should be: mkdir fails (ENOTDIR/EEXIST), as on a read-only mount it fails with EROFS.
    await writeFile(join(dir, 'file'), 'x');
    const root = join(dir, 'file', 'backups');
    const err = await storageMarkProblem({ root, describe: () => `local:${root}` }, redis, prefix).catch((e: unknown) => e);
    expect(isBotError(err)).toBe(true);
    expect((err as { userMessage: string }).userMessage).toMatch(
      new RegExp(`^Could not (read its storage mark|create the backup directory) in ${root} \\((ENOTDIR|EEXIST)\\)\\.$`),
    );
  });

  it('a directory it can write is marked once, and the mark is then known', async () => {
    const root = join(dir, 'good');
    expect(await storageMarkProblem({ root, describe: () => `local:${root}` }, redis, prefix)).toBeNull();
    expect(await storageMarkProblem({ root, describe: () => `local:${root}` }, redis, prefix)).toBeNull();
  });
});
