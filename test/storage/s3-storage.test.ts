import { text } from 'node:stream/consumers';
import { finished } from 'node:stream/promises';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { newRecordId } from '../../src/storage/index.ts';
import type { S3Storage } from '../../src/storage/s3-storage.ts';
import type { Storage } from '../../src/storage/types.ts';
import { makeManifest, storeBackup } from '../fixtures/backups.ts';
import { makeRecord } from '../fixtures/records.ts';
import { rawBucket, startS3Server, testS3Storage, type TestS3Server } from '../support/s3-server.ts';

describe('S3Storage (against a local S3 server)', () => {
  let server: TestS3Server;
  let raw: ReturnType<typeof rawBucket>;
  let storage: S3Storage;
  let prefix: string;
  let n = 0;
  beforeAll(async () => {
    server = await startS3Server();
    raw = rawBucket(server);
  });
  afterAll(async () => {
    raw?.destroy();
    await server?.close();
  });
  beforeEach(() => {
    // Each test gets its own prefix in the shared bucket, so none sees another's objects.
    prefix = `t${++n}/pgbb`;
    storage = testS3Storage(server, { prefix });
  });
  afterEach(() => storage.destroy());

  it('describes itself as s3://bucket/prefix', () => {
    expect(storage.describe()).toBe(`s3://${server.bucket}/${prefix}`);
    const bare = testS3Storage(server, { prefix: '' });
    expect(bare.describe()).toBe(`s3://${server.bucket}`);
    bare.destroy();
  });

  it('keeps the local layout under the prefix and lists nothing before the manifest', async () => {
    const id = 'app-20260101T000000Z';
    await storage.beginBackup('app', id);
    const w = await storage.createArtifactWriter('app', id, 'database.pgdump.zst');
    w.stream.end('hello');
    await finished(w.stream);
    await w.commit();
    expect(await raw.keys(prefix)).toEqual([`${prefix}/app/${id}/.reserved`, `${prefix}/app/${id}/database.pgdump.zst`]);
    expect(await storage.list()).toEqual([]);
    await expect(storage.readManifest('app', id)).rejects.toMatchObject({ code: 'backup_not_found' });
    expect(await text(await storage.openArtifact('app', id, 'database.pgdump.zst'))).toBe('hello');
  });

  it('writes the manifest last, after checking its artifacts, and then refuses new files', async () => {
    const m = await storeBackup(storage, 'app', 'app-20260101T000000Z', '2026-01-01T00:00:00.000Z');
    expect(JSON.parse((await raw.get(`${prefix}/app/${m.backupId}/manifest.json`)).toString())).toEqual(m);
    expect(await storage.readManifest('app', m.backupId)).toEqual(m);
    expect(await storage.list('app')).toEqual([m]);

    const bad = { ...m, artifacts: [{ ...m.artifacts[0], bytes: 999 }] } as typeof m;
    await expect(storage.writeManifest(bad)).rejects.toMatchObject({ code: 'storage_failed', userMessage: expect.stringContaining('not 999') });
    await expect(storage.writeManifest({ ...m, snapshotId: 3 } as unknown as typeof m)).rejects.toMatchObject({ code: 'internal' });
    const missing = makeManifest({ target: 'app', backupId: 'app-20260102T000000Z', startedAt: '2026-01-02T00:00:00Z' });
    await expect(storage.writeManifest(missing)).rejects.toMatchObject({ code: 'storage_failed' });
    await expect(storage.createArtifactWriter('app', m.backupId, 'globals.sql.zst')).rejects.toMatchObject({ code: 'storage_failed' });
  });

  it('lists newest first by startedAt across targets, not by name', async () => {
    const old = await storeBackup(storage, 'zeta', 'zeta-20250101T000000Z', '2025-01-01T00:00:00Z');
    const mid = await storeBackup(storage, 'alpha', 'alpha-20260101T000000Z', '2026-01-01T00:00:00Z');
    const newest = await storeBackup(storage, 'alpha', 'alpha-20240101T000000Z', '2026-06-01T00:00:00.5Z');
    expect((await storage.list()).map((m) => m.backupId)).toEqual([newest.backupId, mid.backupId, old.backupId]);
    expect((await storage.list('alpha')).map((m) => m.backupId)).toEqual([newest.backupId, mid.backupId]);
    expect(await storage.list('nobody')).toEqual([]);
    await expect(storage.list('../x')).rejects.toMatchObject({ code: 'bad_request' });
  });

  it('never lists unfinished or broken backups', async () => {
    const good = await storeBackup(storage, 'app', 'app-20260101T000000Z', '2026-01-01T00:00:00Z');
    await storage.beginBackup('app', 'app-20260102T000000Z'); // unfinished: no manifest
    const broken = await storeBackup(storage, 'app', 'app-20260103T000000Z', '2026-01-03T00:00:00Z');
    await raw.put(`${prefix}/app/${broken.backupId}/manifest.json`, '{"formatVersion": 1');
    const lost = await storeBackup(storage, 'app', 'app-20260104T000000Z', '2026-01-04T00:00:00Z');
    await raw.delete(`${prefix}/app/${lost.backupId}/database.pgdump.zst`); // an interrupted delete
    const short = await storeBackup(storage, 'app', 'app-20260105T000000Z', '2026-01-05T00:00:00Z');
    await raw.put(`${prefix}/app/${short.backupId}/database.pgdump.zst`, 'x'); // overwritten: the wrong size
    await raw.put(`${prefix}/stray-file`, 'x');
    await raw.put(`${prefix}/app/stray-file`, 'x');
    expect(await storage.list()).toEqual([good]);
  });

  it('reserves a backup name exclusively', async () => {
    await storage.beginBackup('app', 'app-20260101T000000Z');
    await expect(storage.beginBackup('app', 'app-20260101T000000Z')).rejects.toMatchObject({
      code: 'backup_exists',
      userMessage: expect.stringContaining('already exists'),
    });
  });

  it('deletes artifacts, then the manifest, leaving nothing of the backup', async () => {
    const m = await storeBackup(storage, 'app', 'app-20260101T000000Z', '2026-01-01T00:00:00Z');
    const keep = await storeBackup(storage, 'app', 'app-20260102T000000Z', '2026-01-02T00:00:00Z');
    await storage.deleteBackup('app', m.backupId);
    expect(await raw.keys(`${prefix}/app/${m.backupId}/`)).toEqual([]);
    expect(await storage.list()).toEqual([keep]);
    await expect(storage.deleteBackup('app', m.backupId)).rejects.toMatchObject({ code: 'backup_not_found' });
  });

  it('deletes a backup in the safe order: an interrupted delete leaves nothing listed', async () => {
    const m = await storeBackup(storage, 'app', 'app-20260101T000000Z', '2026-01-01T00:00:00Z');
    const dir = `${prefix}/app/${m.backupId}/`;
    const seen = server.events.length;
    await storage.deleteBackup('app', m.backupId);
    // The server's own event log: the manifest goes last, so at no moment is a manifest without its artifacts.
    expect(server.events.slice(seen)).toEqual([
      `ObjectRemoved:Delete ${dir}database.pgdump.zst`,
      `ObjectRemoved:Delete ${dir}.reserved`,
      `ObjectRemoved:Delete ${dir}manifest.json`,
    ]);
    expect(await raw.keys(prefix)).toEqual([]);
  });

  it('discards an unfinished backup but refuses to discard a finished one', async () => {
    const m = await storeBackup(storage, 'app', 'app-20260101T000000Z', '2026-01-01T00:00:00Z');
    await expect(storage.discardUnfinished('app', m.backupId)).rejects.toMatchObject({ code: 'storage_failed' });
    await storage.beginBackup('app', 'app-20260102T000000Z');
    const w = await storage.createArtifactWriter('app', 'app-20260102T000000Z', 'database.pgdump.zst');
    w.stream.write('partial data');
    await w.abort();
    await w.abort(); // twice is fine
    const w2 = await storage.createArtifactWriter('app', 'app-20260102T000000Z', 'globals.sql.zst');
    w2.stream.end('left behind by a crash');
    await finished(w2.stream);
    await w2.commit();
    await storage.discardUnfinished('app', 'app-20260102T000000Z');
    expect(await raw.keys(`${prefix}/app/`)).toEqual([`${prefix}/app/${m.backupId}/.reserved`, `${prefix}/app/${m.backupId}/database.pgdump.zst`, `${prefix}/app/${m.backupId}/manifest.json`]);
    await storage.beginBackup('app', 'app-20260102T000000Z'); // the name is free again
  });

  it('finds unfinished backups older than a threshold', async () => {
    await storeBackup(storage, 'app', 'app-20260101T000000Z', '2026-01-01T00:00:00Z');
    await storage.beginBackup('app', 'app-20260102T000000Z');
    expect(await storage.listUnfinished(60_000)).toEqual([]);
    const later = new Date(Date.now() + 3600_000);
    expect((await storage.listUnfinished(60_000, later)).map((u) => [u.backupId, u.path])).toEqual([
      ['app-20260102T000000Z', `s3://${server.bucket}/${prefix}/app/app-20260102T000000Z/`],
    ]);
  });

  it('refuses names that could escape the prefix', async () => {
    await expect(storage.beginBackup('../etc', 'x-20260101T000000Z')).rejects.toMatchObject({ code: 'bad_request' });
    await expect(storage.beginBackup('app', 'other-20260101T000000Z')).rejects.toMatchObject({ code: 'bad_request' });
    await storage.beginBackup('app', 'app-20260101T000000Z');
    for (const file of ['../x', '.hidden', '.reserved', 'manifest.json', 'a.partial', 'a/b']) {
      await expect(storage.createArtifactWriter('app', 'app-20260101T000000Z', file)).rejects.toMatchObject({ code: 'bad_request' });
    }
    await expect(storage.openArtifact('app', 'app-20260101T000000Z', 'nothing.zst')).rejects.toMatchObject({ code: 'backup_not_found' });
  });

  it('keeps restore records beside the backups, newest first, untouched by deleting a backup', async () => {
    const m = await storeBackup(storage, 'app', 'app-20260101T000000Z', '2026-01-01T00:00:00Z');
    const old = makeRecord({ startedAt: '2026-01-01T00:00:00.000Z' });
    const newest = makeRecord({ startedAt: '2026-03-01T00:00:00.000Z', passed: false, problems: ['indexes: 21 expected, 20 restored'] });
    const other = makeRecord({ startedAt: '2026-02-01T00:00:00.000Z', target: 'billing', backupId: 'billing-20260201T000000Z' });
    const restore = makeRecord({ startedAt: '2026-01-05T00:00:00.000Z', kind: 'restore', passed: null, dropped: false });
    for (const r of [other, old, newest, restore]) await storage.writeRecord(r);
    expect(await raw.keys(`${prefix}/app/_records/`)).toEqual(
      [`${prefix}/app/_records/restore-test/${old.id}.json`, `${prefix}/app/_records/restore-test/${newest.id}.json`, `${prefix}/app/_records/restore/${restore.id}.json`].sort(),
    );
    expect(await storage.listRecords('restore-test')).toEqual([newest, other, old]);
    expect(await storage.listRecords('restore-test', 'app')).toEqual([newest, old]);
    expect(await storage.listRecords('restore')).toEqual([restore]);
    expect(await storage.listRecords('restore-test', 'nobody')).toEqual([]);
    await raw.put(`${prefix}/app/_records/restore-test/${newRecordId(new Date('2026-04-01T00:00:00Z'))}.json`, '{"formatVersion": 1');
    await raw.put(`${prefix}/app/_records/restore-test/notes.txt`, 'not a record');
    expect(await storage.listRecords('restore-test', 'app')).toEqual([newest, old]);
    expect(await storage.list()).toEqual([m]);
    expect(await storage.listUnfinished(0, new Date(Date.now() + 86_400_000))).toEqual([]);
    await storage.deleteBackup('app', m.backupId);
    expect(await storage.listRecords('restore-test', 'app')).toEqual([newest, old]);
    await expect(storage.writeRecord({ ...old, id: '../../etc' })).rejects.toMatchObject({ code: 'internal' });
    await expect(storage.listRecords('restore-test', '../x')).rejects.toMatchObject({ code: 'bad_request' });
  });

  it('has no free space to report (S3 has no disk)', () => {
    const s: Storage = storage;
    expect(s.freeSpace).toBeUndefined();
  });
});
