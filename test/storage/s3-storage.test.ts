import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { S3Storage } from '../../src/storage/s3-storage.ts';
import type { Storage } from '../../src/storage/types.ts';
import { storeBackup } from '../fixtures/backups.ts';
import { testS3Storage, useS3Server, type RawBucket, type TestS3Server } from '../support/s3-server.ts';
import { storageContract, type StorageBackend } from './storage-contract.ts';

let server: TestS3Server;
let raw: RawBucket;
useS3Server((s, r) => {
  server = s;
  raw = r;
});

// Each test gets its own prefix in the shared bucket, so none sees another's objects.
let n = 0;
const nextPrefix = () => `t${++n}/pgbb`;

storageContract('S3Storage (against a local S3 server)', async (): Promise<StorageBackend> => {
  const prefix = nextPrefix();
  const storage = testS3Storage(server, { prefix });
  return {
    storage,
    files: async (under = '') => (await raw.keys(`${prefix}/${under}`)).map((k) => k.slice(prefix.length + 1)),
    reserved: ['.reserved'],
    location: (target, backupId) => `s3://${server.bucket}/${prefix}/${target}/${backupId}/`,
    read: async (path) => (await raw.get(`${prefix}/${path}`)).toString(),
    put: (path, body) => raw.put(`${prefix}/${path}`, body),
    remove: (path) => raw.delete(`${prefix}/${path}`),
    close: async () => storage.destroy(),
  };
});

describe('S3Storage in its bucket', () => {
  let storage: S3Storage;
  let prefix: string;
  beforeEach(() => {
    prefix = nextPrefix();
    storage = testS3Storage(server, { prefix });
  });
  afterEach(() => storage.destroy());

  it('describes itself as s3://bucket/prefix', () => {
    expect(storage.describe()).toBe(`s3://${server.bucket}/${prefix}`);
    const bare = testS3Storage(server, { prefix: '' });
    expect(bare.describe()).toBe(`s3://${server.bucket}`);
    bare.destroy();
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

  it('has no free space to report (S3 has no disk)', () => {
    const s: Storage = storage;
    expect(s.freeSpace).toBeUndefined();
  });
});
