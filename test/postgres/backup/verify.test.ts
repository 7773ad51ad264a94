import { createReadStream } from 'node:fs';
import { readFile, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { DATABASE_FILE, runBackup, verifyArtifact } from '../../../src/postgres/backup/index.ts';
import { findPgTools } from '../../../src/postgres/index.ts';
import type { Manifest } from '../../../src/storage/index.ts';
import { createTestDatabase, runSql } from '../../support/databases.ts';
import { backupOptions, tempStorage } from '../../support/postgres-helpers.ts';

describe('verifyArtifact', () => {
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let store: Awaited<ReturnType<typeof tempStorage>>;
  let manifest: Manifest;
  let file: string;
  let pgRestore: string;

  beforeAll(async () => {
    db = await createTestDatabase(inject('pgUrl'), 'verify');
    await runSql(db.url, 'CREATE TABLE t AS SELECT i, md5(i::text) AS a FROM generate_series(1, 50000) i');
    store = await tempStorage();
    manifest = await runBackup(backupOptions(db.url, store.storage, { verify: 'full' }));
    file = join(store.root, 'app', manifest.backupId, DATABASE_FILE);
    pgRestore = (await findPgTools({ serverMajor: 12 })).pgRestore;
  });
  afterAll(async () => {
    await db?.drop();
    await store?.cleanup();
  });

  const check = (path: string, mode: 'list' | 'full') => verifyArtifact({ source: createReadStream(path), zstd: 'zstd', pgRestore, mode });

  it('lists the TOC cheaply, and in full mode reads everything and counts the raw bytes zstd reported', async () => {
    const listed = await check(file, 'list');
    expect(listed.tocEntries).toBeGreaterThan(0);
    const full = await check(file, 'full');
    expect(full.rawBytes).toBe(manifest.artifacts[0]?.rawBytes);
  });

  it('rejects a file that is not an archive', async () => {
    const junk = join(store.root, 'junk.zst');
    await writeFile(junk, 'not zstd at all');
    await expect(check(junk, 'list')).rejects.toMatchObject({ code: 'pg_dump_failed', userMessage: expect.stringContaining('could not be read back') });
  });

  it('catches a truncated archive in full mode', async () => {
    const cut = join(store.root, 'cut.zst');
    await writeFile(cut, await readFile(file));
    await truncate(cut, Math.floor((await stat(cut)).size / 2));
    await expect(check(cut, 'full')).rejects.toMatchObject({ code: 'pg_dump_failed' });
  });
});
