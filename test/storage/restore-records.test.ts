import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { newRecordId, RECORDS_DIR, type LocalStorage } from '../../src/storage/index.ts';
import { storeBackup } from '../fixtures/backups.ts';
import { makeRecord } from '../fixtures/records.ts';
import { tempRoot } from './fixtures.ts';

describe('LocalStorage restore records', () => {
  let root: string;
  let storage: LocalStorage;
  let cleanup: () => Promise<void>;
  beforeEach(async () => {
    ({ root, storage, cleanup } = await tempRoot());
  });
  afterEach(() => cleanup());

  it('writes each record atomically beside the backups and lists them newest first by start time', async () => {
    const old = makeRecord({ startedAt: '2026-01-01T00:00:00.000Z' });
    const newest = makeRecord({ startedAt: '2026-03-01T00:00:00.000Z', passed: false, problems: ['indexes: 21 expected, 20 restored'] });
    const mid = makeRecord({ startedAt: '2026-02-01T00:00:00.000Z', target: 'billing', backupId: 'billing-20260201T000000Z' });
    for (const r of [mid, old, newest]) await storage.writeRecord(r);

    const dir = join(root, 'app', RECORDS_DIR, 'restore-test');
    expect((await readdir(dir)).sort()).toEqual([`${old.id}.json`, `${newest.id}.json`].sort());
    expect(JSON.parse(await readFile(join(dir, `${old.id}.json`), 'utf8'))).toEqual(old);
    expect(await storage.listRecords('restore-test')).toEqual([newest, mid, old]);
    expect(await storage.listRecords('restore-test', 'app')).toEqual([newest, old]);
    expect(await storage.listRecords('restore')).toEqual([]);
    expect(await storage.listRecords('restore-test', 'nobody')).toEqual([]);
  });

  it('keeps restores apart from restore tests', async () => {
    const r = makeRecord({
      startedAt: '2026-01-05T00:00:00.000Z',
      kind: 'restore',
      passed: null,
      database: 'app_restore_1',
      dropped: false,
      selection: { tables: ['shop.orders'], schemas: [], into: null, created: true },
    });
    await storage.writeRecord(r);
    expect(await storage.listRecords('restore', 'app')).toEqual([r]);
    expect(await storage.listRecords('restore-test', 'app')).toEqual([]);
  });

  it('never shows _records as a backup, an unfinished backup, or loses it when retention deletes the backup', async () => {
    const m = await storeBackup(storage, 'app', 'app-20260101T000000Z', '2026-01-01T00:00:00Z');
    const r = makeRecord({ startedAt: '2026-01-02T00:00:00.000Z' });
    await storage.writeRecord(r);
    expect(await storage.list()).toEqual([m]);
    expect(await storage.list('app')).toEqual([m]);
    expect(await storage.listUnfinished(0, new Date(Date.now() + 86_400_000))).toEqual([]);
    await storage.deleteBackup('app', m.backupId);
    expect(await storage.list()).toEqual([]);
    expect(await storage.listRecords('restore-test', 'app')).toEqual([r]);
  });

  it('refuses an invalid record and skips an unreadable file', async () => {
    await expect(storage.writeRecord({ ...makeRecord({ startedAt: '2026-01-01T00:00:00.000Z' }), id: '../../etc' })).rejects.toMatchObject({ code: 'internal' });
    await expect(storage.writeRecord({ ...makeRecord({ startedAt: '2026-01-01T00:00:00.000Z' }), target: 'Bad/Target' })).rejects.toMatchObject({ code: 'internal' });
    const good = makeRecord({ startedAt: '2026-01-01T00:00:00.000Z' });
    await storage.writeRecord(good);
    const dir = join(root, 'app', RECORDS_DIR, 'restore-test');
    await writeFile(join(dir, `${newRecordId(new Date('2026-02-01T00:00:00Z'))}.json`), '{"formatVersion": 1');
    await writeFile(join(dir, 'notes.txt'), 'not a record');
    expect(await storage.listRecords('restore-test', 'app')).toEqual([good]);
    await expect(storage.listRecords('restore-test', '../x')).rejects.toMatchObject({ code: 'bad_request' });
  });

  it('makes ids that sort by time', () => {
    const a = newRecordId(new Date('2026-01-01T00:00:00.001Z'));
    const b = newRecordId(new Date('2026-01-01T00:00:00.002Z'));
    expect(a).toMatch(/^20260101T000000001Z-[0-9a-f]{6}$/);
    expect(a < b).toBe(true);
  });
});
