import { mkdir, readdir, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { finished } from 'node:stream/promises';
import { execa } from 'execa';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalStorage } from '../../src/storage/index.ts';
import type { Manifest } from '../../src/storage/manifest.ts';
import { VerifiedBackups } from '../../src/storage/manifest-cache.ts';
import { storeBackup } from '../fixtures/backups.ts';
import { tempRoot } from './fixtures.ts';
import { storageContract, type StorageBackend } from './storage-contract.ts';

/** Every file below `root/under`, relative to root, as S3 would list keys. */
async function filesUnder(root: string, under: string): Promise<string[]> {
  const entries = await readdir(join(root, under), { recursive: true }).catch(() => [] as string[]);
  const files: string[] = [];
  for (const e of entries) if ((await stat(join(root, under, e))).isFile()) files.push(join(under, e));
  return files.sort();
}

storageContract('LocalStorage', async (): Promise<StorageBackend> => {
  const { root, storage, cleanup } = await tempRoot();
  return {
    storage,
    files: (under = '') => filesUnder(root, under),
    reserved: [],
    location: (target, backupId) => join(root, target, backupId),
    read: (path) => readFile(join(root, path), 'utf8'),
    put: (path, body) => writeFile(join(root, path), body),
    remove: (path) => rm(join(root, path)),
    close: cleanup,
  };
});

describe('LocalStorage on disk', () => {
  let root: string;
  let storage: LocalStorage;
  let cleanup: () => Promise<void>;
  beforeEach(async () => {
    ({ root, storage, cleanup } = await tempRoot());
  });
  afterEach(() => cleanup());

  it('keeps an artifact under a temporary name until commit', async () => {
    await storage.beginBackup('app', 'app-20260101T000000Z');
    const dir = join(root, 'app', 'app-20260101T000000Z');
    const w = await storage.createArtifactWriter('app', 'app-20260101T000000Z', 'database.pgdump.zst');
    w.stream.end('hello');
    await finished(w.stream);
    expect(await readdir(dir)).toEqual(['database.pgdump.zst.partial']);
    await w.commit();
    expect(await readdir(dir)).toEqual(['database.pgdump.zst']);
  });

  it('lists from parsed manifests it has seen, yet shows a rewritten manifest, a shrunk artifact and a deleted backup at once', async () => {
    const id = 'app-20260101T000000Z';
    const dir = join(root, 'app', id);
    await storeBackup(storage, 'app', id, '2026-01-01T00:00:00Z');
    const [first] = await storage.list('app');
    // Handed to every caller from the cache: nobody may change what the next one sees.
    expect(Object.isFrozen(first?.verification.tables)).toBe(true);
    // Rewritten the way writeManifest writes (temporary file renamed over it): a new file, so it is read again.
    const text = await readFile(join(dir, 'manifest.json'), 'utf8');
    await writeFile(join(dir, 'manifest.json.tmp'), text.replace('"label": null', '"label": "JIRA-7"'));
    await rename(join(dir, 'manifest.json.tmp'), join(dir, 'manifest.json'));
    expect((await storage.list('app'))[0]?.label).toBe('JIRA-7');
    // The artifacts are looked at on every listing, cache or not.
    await writeFile(join(dir, 'database.pgdump.zst'), '');
    expect(await storage.list('app')).toEqual([]);
    await rm(dir, { recursive: true });
    expect(await storage.list()).toEqual([]);
  });

  it('re-reads the sizes of a quiet backup only when its directory changed, or after 10 s', async () => {
    const id = 'app-20260101T000000Z';
    const dir = join(root, 'app', id);
    await storeBackup(storage, 'app', id, '2026-01-01T00:00:00Z');
    const quiet = async () => {
      const past = new Date(Date.now() - 60_000);
      await utimes(dir, past, past);
    };
    await quiet();
    expect(await storage.list('app')).toHaveLength(1); // checked whole, and remembered
    // Damaged in place (the directory does not move): still listed until the next re-read, at most 10 s later…
    const dump = join(dir, 'database.pgdump.zst');
    const bytes = await readFile(dump);
    await writeFile(dump, '');
    expect(await storage.list('app')).toHaveLength(1);
    // A fresh look (nothing remembered) sees the damage at once; a remembered check holds for 10 s at most.
    expect(await new LocalStorage(root).list('app')).toEqual([]);
    const verified = new VerifiedBackups();
    const st = await stat(dir);
    const manifest = {} as Manifest;
    verified.remember(dir, st, Date.now(), manifest);
    expect(verified.get(dir, st, Date.now() + 9_000)).toBe(manifest);
    expect(verified.get(dir, st, Date.now() + 10_001)).toBeUndefined();
    // A file renamed into, added to or removed from the directory moves it: seen at once, however recent the check.
    await writeFile(dump, bytes);
    expect(await storage.list('app')).toHaveLength(1);
    await writeFile(`${dump}.tmp`, '');
    await rename(`${dump}.tmp`, dump);
    expect(await storage.list('app')).toEqual([]);
    // A directory that changed within the last second is never remembered (file times move in coarse ticks).
    const fresh = await stat(dir);
    verified.remember(dir, fresh, fresh.mtimeMs + 500, manifest);
    expect(verified.get(dir, fresh, fresh.mtimeMs + 600)).toBeUndefined();
  });

  it('ages an unfinished backup by its modification time', async () => {
    await storeBackup(storage, 'app', 'app-20260101T000000Z', '2026-01-01T00:00:00Z');
    await storage.beginBackup('app', 'app-20260102T000000Z');
    await storage.beginBackup('app', 'app-20260103T000000Z');
    const hourAgo = new Date(Date.now() - 3600_000);
    await utimes(join(root, 'app', 'app-20260102T000000Z'), hourAgo, hourAgo);
    const found = await storage.listUnfinished(30 * 60_000);
    expect(found.map((u) => u.backupId)).toEqual(['app-20260102T000000Z']);
  });

  it('reports free space of the backup disk', async () => {
    // What df (coreutils, statvfs) says of the same file system, read just before and just after: other tests write
    // and delete hundreds of MB in the same temp directory meanwhile (CI once saw it move by 98 MB between two reads),
    // so the figure must lie between the two, give or take 64 MB.
    const df = async () => {
      const { stdout } = await execa('df', ['-B1', '--output=size,avail', root]);
      return (stdout.trim().split('\n')[1] ?? '').trim().split(/\s+/).map(Number) as [number, number];
    };
    const [size, before] = await df();
    const s = await storage.freeSpace();
    const [, after] = await df();
    expect(s.totalBytes).toBe(size);
    const slack = 64 * 1024 * 1024;
    expect(s.freeBytes).toBeGreaterThanOrEqual(Math.min(before, after) - slack);
    expect(s.freeBytes).toBeLessThanOrEqual(Math.max(before, after) + slack);
    expect(s.freeBytes).toBeLessThanOrEqual(s.totalBytes);
  });

  it('a failed first backup leaves nothing: the directories its reservation made go, those that were there stay', async () => {
    const [a, b] = ['app-20260101T000000Z', 'app-20260102T000000Z'];
    // A root and a target directory the reservation created: both go with the discarded backup.
    const fresh = new LocalStorage(join(root, 'backups'));
    await fresh.beginBackup('app', a, { queue: 'backup', jobId: '1' });
    await fresh.discardUnfinished('app', a);
    expect(await readdir(root)).toEqual([]);
    // A target directory that was there before stays, empty or not; so does one another backup is using.
    await mkdir(join(root, 'backups', 'app'), { recursive: true });
    await fresh.beginBackup('app', a);
    await fresh.discardUnfinished('app', a);
    expect(await readdir(join(root, 'backups'))).toEqual(['app']);
    await rm(join(root, 'backups'), { recursive: true });
    await fresh.beginBackup('app', a);
    await fresh.beginBackup('app', b);
    await fresh.discardUnfinished('app', a);
    expect(await readdir(join(root, 'backups', 'app'))).toEqual([b]);
    // Another process (retention) discarding an unfinished backup removes only that backup's directory.
    await new LocalStorage(join(root, 'backups')).discardUnfinished('app', b);
    expect(await readdir(join(root, 'backups', 'app'))).toEqual([]);
  });
});
