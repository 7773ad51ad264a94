import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, unlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { archivedBases, archivedWal, lostWal } from '../../../src/postgres/pitr/wal-index.ts';
import { LocalWalStore, type WalEntry } from '../../../src/postgres/pitr/wal-store.ts';

let root: string;
let store: LocalWalStore;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'pgbb-walidx-'));
  store = new LocalWalStore(root, `t${randomBytes(3).toString('hex')}`);
});
afterEach(() => rm(root, { recursive: true, force: true }));

/** One archived segment as the archiver leaves it: the file, then its index entry. */
async function archive(name: string): Promise<WalEntry> {
  await mkdir(store.dir, { recursive: true });
  const entry: WalEntry = {
    name,
    file: store.fileName(name, false),
    bytes: 3,
    sha256: 'a'.repeat(64),
    rawBytes: 16 * 1024 * 1024,
    compression: 'zstd',
    encryption: 'none',
    archivedAt: new Date().toISOString(),
  };
  await writeFile(join(store.dir, entry.file), 'zst');
  await store.index(entry);
  return entry;
}

const names = async () => (await archivedWal(store)).map((e) => e.name);

describe('the cached WAL index', () => {
  it('lists what the archive holds, sees a segment added at once, and leaves out one whose file is gone', async () => {
    expect(await archivedWal(store)).toEqual([]);
    await archive('000000010000000000000002');
    await archive('000000010000000000000003');
    expect(await names()).toEqual(['000000010000000000000002', '000000010000000000000003']);
    // Added in the same clock tick as the listing above: still seen (a directory this fresh is listed again).
    await archive('000000010000000000000004');
    expect(await names()).toEqual(['000000010000000000000002', '000000010000000000000003', '000000010000000000000004']);
    expect(lostWal(store)).toEqual([]);
    await unlink(join(store.dir, store.fileName('000000010000000000000003', false)));
    expect(await names()).toEqual(['000000010000000000000002', '000000010000000000000004']);
    // Indexed as archived, its file gone: lost (damage), named for the health check.
    expect(lostWal(store)).toEqual(['000000010000000000000003']);
  });

  it('reuses its listing while the directory is unchanged, and reads it again once it changes', async () => {
    await archive('000000010000000000000002');
    // An old mtime: the listing is trusted (not racy) from here on.
    const old = new Date(Date.now() - 60_000);
    await utimes(store.dir, old, old);
    const first = await archivedWal(store);
    expect(await archivedWal(store)).toBe(first);
    await archive('000000010000000000000003');
    const second = await archivedWal(store);
    expect(second).not.toBe(first);
    expect(second.map((e) => e.name)).toEqual(['000000010000000000000002', '000000010000000000000003']);
  });

  it('reads base backups once base.json exists, and forgets one removed from storage', async () => {
    const dir = join(root, store.target, '_base');
    await mkdir(join(dir, 'b1'), { recursive: true });
    expect(await archivedBases(root, store.target)).toEqual([]);
    const record = {
      id: 'b1',
      target: store.target,
      file: 'base.tar.zst',
      bytes: 1,
      rawBytes: 1,
      sha256: 'b'.repeat(64),
      encryption: 'none',
      startedAt: '2026-12-04T10:00:00.000Z',
      finishedAt: '2026-12-04T10:01:00.000Z',
      startLsn: '0/2000028',
      endLsn: '0/2000100',
      timeline: 1,
      pgBasebackupVersion: 'pg_basebackup (PostgreSQL) 15.10',
    };
    await writeFile(join(dir, 'b1', 'base.json'), JSON.stringify(record));
    expect((await archivedBases(root, store.target)).map((b) => b.id)).toEqual(['b1']);
    await rm(join(dir, 'b1'), { recursive: true });
    expect(await archivedBases(root, store.target)).toEqual([]);
  });
});
