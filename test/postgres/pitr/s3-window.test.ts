import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { S3Client } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import type { BaseBackup } from '../../../src/postgres/pitr/base-backup.ts';
import { fetchFromOffsite } from '../../../src/postgres/pitr/offsite-fetch.ts';
import { remoteWindowWal } from '../../../src/postgres/pitr/s3-archive.ts';
import { S3PitrStore } from '../../../src/postgres/pitr/s3-pitr-store.ts';
import type { WalEntry } from '../../../src/postgres/pitr/wal-store.ts';
import { recoverableWindow } from '../../../src/postgres/pitr/window.ts';
import { TEST_CREDENTIALS, type TestS3Server, useS3Server } from '../../support/s3-server.ts';

/**
 * The window read from the bucket (S3_MODE=primary: `/backup list`, health, the PITR restore test) reads only the
 * index entries whose time can end a stretch; the others carry the time the bucket received them, later than the
 * WAL in them reaches. Review: with two gaps, the stretch between them ended at such a time.
 */
describe('the recoverable window read from the bucket', () => {
  let server: TestS3Server;
  useS3Server((s) => {
    server = s;
  });

  const put = async (store: S3PitrStore, name: string, archivedAt: string, forks?: WalEntry['forks']) => {
    const body = Buffer.from(`wal ${name}`);
    const entry: WalEntry = {
      name,
      file: `${name}.zst`,
      bytes: body.length,
      sha256: createHash('sha256').update(body).digest('hex'),
      rawBytes: 16 * 1024 * 1024,
      compression: 'zstd',
      encryption: 'none',
      archivedAt,
      reachedBy: 'sampled',
      storedAt: archivedAt,
      ...(forks ? { forks } : {}),
    };
    await store.putWal(entry, async (w) => {
      await pipeline(Readable.from([body]), w.stream);
      await w.commit();
    });
  };
  const base = async (store: S3PitrStore, id: string, startLsn: string, endLsn: string, finishedAt: string, timeline = 1): Promise<BaseBackup> => {
    const body = Buffer.from(`base ${id}`);
    const b: BaseBackup = {
      id,
      target: 'app',
      file: 'base.tar.zst',
      bytes: body.length,
      rawBytes: body.length,
      sha256: createHash('sha256').update(body).digest('hex'),
      encryption: 'none',
      startedAt: finishedAt,
      finishedAt,
      startLsn,
      endLsn,
      timeline,
      pgBasebackupVersion: '15',
    };
    await store.putBase(b, async (w) => {
      await pipeline(Readable.from([body]), w.stream);
      await w.commit();
    });
    return b;
  };

  it('ends each stretch at the time its last segment holds WAL up to, before every gap, not when the bucket received it', async () => {
    const client = new S3Client({ region: 'us-east-1', endpoint: server.endpoint, forcePathStyle: true, credentials: TEST_CREDENTIALS });
    const store = new S3PitrStore(client, server.bucket, 'pgbb-window', 'app');
    try {
      // A base backup, segments 2–3, a gap at 4; a base backup in 5, segments 5–6, a gap at 7; segment 8.
      await base(store, 'b1', '0/2000028', '0/2000100', '2026-12-04T10:00:00Z');
      await put(store, '000000010000000000000002', '2026-12-04T10:00:05Z');
      await put(store, '000000010000000000000003', '2026-12-04T10:10:00Z');
      await base(store, 'b2', '0/5000028', '0/5000100', '2026-12-04T11:00:00Z');
      await put(store, '000000010000000000000005', '2026-12-04T11:00:05Z');
      await put(store, '000000010000000000000006', '2026-12-04T11:10:00Z');
      await put(store, '000000010000000000000008', '2026-12-04T12:00:00Z');
      const { bases, wal } = await remoteWindowWal(store);
      const w = recoverableWindow(bases, wal);
      // No base backup after the second gap: the window is the stretch between the gaps, the one before is `earlier`.
      expect(w).toMatchObject({ reachesNewest: false, gap: '000000010000000000000007' });
      expect(w?.from.toISOString()).toBe('2026-12-04T11:00:00.000Z');
      expect(w?.to.toISOString()).toBe('2026-12-04T11:10:00.000Z');
      expect(w?.earlier?.to.toISOString()).toBe('2026-12-04T10:10:00.000Z');
    } finally {
      client.destroy();
    }
  });

  it('follows a promotion whose history file is in the bucket, from the old timeline’s base backup (lane.ts)', async () => {
    const client = new S3Client({ region: 'us-east-1', endpoint: server.endpoint, forcePathStyle: true, credentials: TEST_CREDENTIALS });
    const store = new S3PitrStore(client, server.bucket, 'pgbb-window-promoted', 'app');
    try {
      await base(store, 'b1', '0/2000028', '0/2000100', '2026-12-04T10:00:00Z');
      await put(store, '000000010000000000000002', '2026-12-04T10:00:05Z');
      await put(store, '00000002.history', '2026-12-04T10:20:00Z', [{ timeline: 1, switchLsn: '0/3800000' }]);
      await put(store, '000000020000000000000003', '2026-12-04T10:30:00Z');
      await put(store, '000000020000000000000004', '2026-12-04T10:40:00Z');
      const { bases, wal } = await remoteWindowWal(store);
      const w = recoverableWindow(bases, wal);
      expect(w).toMatchObject({ reachesNewest: true, timeline: 2, gaps: [] });
      expect(w?.switched).toBeUndefined();
      expect(w?.to.toISOString()).toBe('2026-12-04T10:40:00.000Z');

      // restore-pitr from the bucket takes the base backup that window starts from, not the newest by time: here an
      // old primary's, taken on timeline 1 past the switch (another branch: review).
      await base(store, 'late', '0/3900028', '0/3900100', '2026-12-04T10:35:00Z');
      const root = await mkdtemp(join(tmpdir(), 'pgbb-s3-lane-'));
      try {
        const got = await fetchFromOffsite({ root, remote: store, at: new Date('2027-12-04T00:00:00Z'), fromWindow: { latest: true } });
        expect(got.base.id).toBe('b1');
      } finally {
        await rm(root, { recursive: true, force: true });
      }
      // The old primary went on past the switch: its timeline's window is listed beside, ending when its newest
      // segment holds WAL up to (its entry is read), not when the bucket received it (review).
      await put(store, '000000010000000000000003', '2026-12-04T10:20:00Z');
      await put(store, '000000010000000000000004', '2026-12-04T10:26:00Z');
      const after = await remoteWindowWal(store);
      const prior = recoverableWindow(after.bases, after.wal)?.priorTimeline;
      expect(prior?.timeline).toBe(1);
      expect(prior?.to.toISOString()).toBe('2026-12-04T10:26:00.000Z');
    } finally {
      client.destroy();
    }
  });
});
