import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createAuditLog, type AuditLog } from '../../src/audit.ts';
import { copyBackup } from '../../src/storage/index.ts';
import type { S3Storage } from '../../src/storage/s3-storage.ts';
import { redisScrubState } from '../../src/storage/scrub.ts';
import { retentionProcessor } from '../../src/workers/retention-worker.ts';
import { storeBackup } from '../fixtures/backups.ts';
import { testS3Storage, useS3Server, type RawBucket, type TestS3Server } from '../support/s3-server.ts';
import { startWorkerKit, type WorkerKit } from './worker-kit.ts';

/**
 * The off-site copy's checksum scrub, as the daily retention job runs it: a copy that rotted in the bucket (same
 * size, other bytes: only its sha256 tells) is found, deleted there and copied again from the primary, checked; one
 * the primary cannot give again (its own backup damaged) stays marked damaged in the copy. Both said in the channel.
 */
describe('the checksum scrub of an off-site copy', () => {
  let kit: WorkerKit;
  let server: TestS3Server;
  let raw: RawBucket;
  let s3: S3Storage;
  let auditDir: string;
  let audit: AuditLog;
  useS3Server((s, r) => {
    server = s;
    raw = r;
  });

  beforeAll(async () => {
    kit = await startWorkerKit({ pgUrl: inject('pgUrl'), redisUrl: inject('redisUrl') });
    auditDir = await mkdtemp(join(tmpdir(), 'pgbb-audit-'));
    audit = createAuditLog(auditDir, kit.log);
    s3 = testS3Storage(server, { prefix: 'offsite' });
  });

  afterAll(async () => {
    s3?.destroy();
    await kit?.stop();
    if (auditDir) await rm(auditDir, { recursive: true, force: true });
  });

  it('copies a rotted copy again from the primary, and marks one the primary cannot give again', async () => {
    const day = (d: number) => new Date(Date.now() - d * 86_400_000).toISOString();
    const bodies = [randomBytes(300_000), randomBytes(200_000)];
    const [a, b] = [
      await storeBackup(kit.storage, 'shop', 'shop-20261201T020000Z', day(2), bodies[0]),
      await storeBackup(kit.storage, 'shop', 'shop-20261202T020000Z', day(1), bodies[1]),
    ];
    if (!a || !b) throw new Error('fixtures');
    for (const m of [a, b]) await copyBackup(kit.storage, s3, m, { log: kit.log });
    // Both copies rot in the bucket: one byte flipped, the size kept.
    const keyOf = (id: string) => `offsite/shop/${id}/database.pgdump.zst`;
    for (const m of [a, b]) {
      const bytes = await raw.get(keyOf(m.backupId));
      bytes[1000] = (bytes[1000] as number) ^ 0xff;
      await raw.put(keyOf(m.backupId), bytes);
    }
    // The primary's own backup b is known damaged: it cannot be the source of a new copy.
    await kit.storage.markDamaged('shop', b.backupId, 'the checksum scrub found database.pgdump.zst changed');

    const processor = retentionProcessor({
      storage: kit.storage,
      copies: [s3],
      queues: kit.queues,
      notifier: kit.notifier,
      audit,
      log: kit.log,
      copyScrubs: [redisScrubState(kit.redis, `${kit.prefix}:copy:${s3.describe()}`)],
    });
    // A run reads a seventh of the copy's bytes, at least one backup, longest unread first: a, then b the next day.
    for (const day of [1, 2]) {
      const job = await kit.runJob(processor, { dryRun: false }, { jobId: `retention-copy-scrub-${day}` });
      expect(job.failedReason).toBeUndefined();
    }

    // a: whole again in the bucket, byte for byte the primary's, and listed.
    expect((await raw.get(keyOf(a.backupId))).equals(bodies[0] as Buffer)).toBe(true);
    expect((await s3.list('shop')).map((m) => m.backupId)).toEqual([a.backupId]);
    // b: marked damaged there, so no listing of the copy offers it.
    expect(s3.damaged('shop').map((d) => d.backupId)).toEqual([b.backupId]);

    const said = [...kit.slack.messages.values()]
      .map((m) => m.text ?? '')
      .filter((t) => t.includes('in s3://'))
      .join('\n');
    expect(said).toContain(
      `:warning: The copy of backup ${a.backupId} of shop in s3://${server.bucket}/offsite was damaged (the checksum scrub found artifact corrupted: database.pgdump.zst (sha256`,
    );
    expect(said).toContain('it was copied again from the primary, every byte checked.');
    expect(said).toContain(`:rotating_light: The copy of backup ${b.backupId} of shop in s3://${server.bucket}/offsite is damaged:`);
    expect(said).toContain(
      `not copied again: the primary (${kit.storage.describe()}) has it damaged too: take a new backup (\`/backup now shop\`) if you counted on it.`,
    );
  }, 60_000);
});
