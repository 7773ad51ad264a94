import { readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { text } from 'node:stream/consumers';
import { finished } from 'node:stream/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { LocalStorage } from '../../src/storage/index.ts';
import { makeManifest, storeBackup } from '../fixtures/backups.ts';
import { tempRoot } from './fixtures.ts';

describe('LocalStorage', () => {
  let root: string;
  let storage: LocalStorage;
  let cleanup: () => Promise<void>;
  beforeEach(async () => {
    ({ root, storage, cleanup } = await tempRoot());
  });
  afterEach(() => cleanup());

  it('keeps an artifact under a temporary name until commit, and lists nothing before the manifest', async () => {
    await storage.beginBackup('app', 'app-20260101T000000Z');
    const dir = join(root, 'app', 'app-20260101T000000Z');
    const w = await storage.createArtifactWriter('app', 'app-20260101T000000Z', 'database.pgdump.zst');
    w.stream.end('hello');
    await finished(w.stream);
    expect(await readdir(dir)).toEqual(['database.pgdump.zst.partial']);
    await w.commit();
    expect(await readdir(dir)).toEqual(['database.pgdump.zst']);
    expect(await storage.list()).toEqual([]);
    expect(await text(await storage.openArtifact('app', 'app-20260101T000000Z', 'database.pgdump.zst'))).toBe('hello');
  });

  it('writes the manifest last and atomically, after checking it and its artifacts', async () => {
    const m = await storeBackup(storage, 'app', 'app-20260101T000000Z', '2026-01-01T00:00:00.000Z');
    const dir = join(root, 'app', m.backupId);
    expect((await readdir(dir)).sort()).toEqual(['database.pgdump.zst', 'manifest.json']);
    expect(JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8'))).toEqual(m);
    expect(await storage.list('app')).toEqual([m]);

    const bad = { ...m, artifacts: [{ ...m.artifacts[0], bytes: 999 }] } as typeof m;
    await expect(storage.writeManifest(bad)).rejects.toMatchObject({ code: 'storage_failed' });
    await expect(storage.writeManifest({ ...m, snapshotId: 3 } as unknown as typeof m)).rejects.toMatchObject({ code: 'internal' });
  });

  it('lists newest first by startedAt across targets, not by name', async () => {
    // By name "zeta-2025…" sorts after "alpha-2026…"; by time it is older.
    const old = await storeBackup(storage, 'zeta', 'zeta-20250101T000000Z', '2025-01-01T00:00:00Z');
    const mid = await storeBackup(storage, 'alpha', 'alpha-20260101T000000Z', '2026-01-01T00:00:00Z');
    // An id whose stamp disagrees with startedAt: the manifest's time wins.
    const newest = await storeBackup(storage, 'alpha', 'alpha-20240101T000000Z', '2026-06-01T00:00:00.5Z');
    expect((await storage.list()).map((m) => m.backupId)).toEqual([newest.backupId, mid.backupId, old.backupId]);
    expect((await storage.list('alpha')).map((m) => m.backupId)).toEqual([newest.backupId, mid.backupId]);
    expect(await storage.list('nobody')).toEqual([]);
  });

  it('never lists unfinished or broken backups', async () => {
    const good = await storeBackup(storage, 'app', 'app-20260101T000000Z', '2026-01-01T00:00:00Z');
    await storage.beginBackup('app', 'app-20260102T000000Z'); // unfinished: no manifest
    const broken = await storeBackup(storage, 'app', 'app-20260103T000000Z', '2026-01-03T00:00:00Z');
    await writeFile(join(root, 'app', broken.backupId, 'manifest.json'), '{"formatVersion": 1');
    const lost = await storeBackup(storage, 'app', 'app-20260104T000000Z', '2026-01-04T00:00:00Z');
    await rm(join(root, 'app', lost.backupId, 'database.pgdump.zst')); // an interrupted delete
    await writeFile(join(root, 'stray-file'), 'x');
    expect(await storage.list()).toEqual([good]);
  });

  it('reserves a backup directory exclusively', async () => {
    await storage.beginBackup('app', 'app-20260101T000000Z');
    await expect(storage.beginBackup('app', 'app-20260101T000000Z')).rejects.toMatchObject({
      code: 'backup_exists',
      userMessage: expect.stringContaining('already exists'),
    });
  });

  it('deletes artifacts, then the manifest, then the directory', async () => {
    const m = await storeBackup(storage, 'app', 'app-20260101T000000Z', '2026-01-01T00:00:00Z');
    const dir = join(root, 'app', m.backupId);
    await writeFile(join(dir, 'leftover.partial'), 'x');
    await storage.deleteBackup('app', m.backupId);
    expect(await readdir(join(root, 'app'))).toEqual([]);
    expect(await storage.list()).toEqual([]);
    await expect(storage.deleteBackup('app', m.backupId)).rejects.toMatchObject({ code: 'backup_not_found' });
  });

  it('discards an unfinished backup but refuses to discard a finished one', async () => {
    const m = await storeBackup(storage, 'app', 'app-20260101T000000Z', '2026-01-01T00:00:00Z');
    await expect(storage.discardUnfinished('app', m.backupId)).rejects.toMatchObject({ code: 'storage_failed' });
    await storage.beginBackup('app', 'app-20260102T000000Z');
    const w = await storage.createArtifactWriter('app', 'app-20260102T000000Z', 'database.pgdump.zst');
    w.stream.write('partial data');
    await w.abort();
    await storage.discardUnfinished('app', 'app-20260102T000000Z');
    expect(await readdir(join(root, 'app'))).toEqual([m.backupId]);
  });

  it('finds unfinished backups older than a threshold for cleanup', async () => {
    await storeBackup(storage, 'app', 'app-20260101T000000Z', '2026-01-01T00:00:00Z');
    await storage.beginBackup('app', 'app-20260102T000000Z');
    await storage.beginBackup('app', 'app-20260103T000000Z');
    const hourAgo = new Date(Date.now() - 3600_000);
    await utimes(join(root, 'app', 'app-20260102T000000Z'), hourAgo, hourAgo);
    const found = await storage.listUnfinished(30 * 60_000);
    expect(found.map((u) => u.backupId)).toEqual(['app-20260102T000000Z']);
  });

  it('refuses names that could escape the root', async () => {
    await expect(storage.beginBackup('../etc', 'x-20260101T000000Z')).rejects.toMatchObject({ code: 'bad_request' });
    await expect(storage.beginBackup('app', 'other-20260101T000000Z')).rejects.toMatchObject({ code: 'bad_request' });
    await storage.beginBackup('app', 'app-20260101T000000Z');
    for (const file of ['../x', '.hidden', 'manifest.json', 'a.partial']) {
      await expect(storage.createArtifactWriter('app', 'app-20260101T000000Z', file)).rejects.toMatchObject({ code: 'bad_request' });
    }
  });

  it('reports free space of the backup disk', async () => {
    const s = await storage.freeSpace();
    expect(s.totalBytes).toBeGreaterThan(0);
    expect(s.freeBytes).toBeGreaterThan(0);
    expect(s.freeBytes).toBeLessThanOrEqual(s.totalBytes);
  });

  it('reads a missing backup as backup_not_found', async () => {
    await expect(storage.readManifest('app', 'app-20260101T000000Z')).rejects.toMatchObject({ code: 'backup_not_found' });
    const m = makeManifest({ target: 'app', backupId: 'app-20260101T000000Z', startedAt: '2026-01-01T00:00:00Z' });
    await expect(storage.writeManifest(m)).rejects.toMatchObject({ code: 'storage_failed' });
  });
});
