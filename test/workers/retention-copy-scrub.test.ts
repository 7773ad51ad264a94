import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createAuditLog, type AuditLog } from '../../src/audit.ts';
import { repairClaim, repairLockKey, tryRedisLock } from '../../src/jobs/redis-lock.ts';
import { repairFromCopies } from '../../src/storage/copy-scrub.ts';
import { copyBackup } from '../../src/storage/index.ts';
import type { S3Storage } from '../../src/storage/s3-storage.ts';
import { copyScrubState, memoryScrubState, redisScrubState } from '../../src/storage/scrub.ts';
import { retentionProcessor } from '../../src/workers/retention-worker.ts';
import { storeBackup } from '../fixtures/backups.ts';
import { testS3Storage, useS3Server, type RawBucket, type TestS3Server } from '../support/s3-server.ts';
import { startWorkerKit, type WorkerKit } from './worker-kit.ts';

/**
 * The off-site copy's checksum scrub, as the daily retention job runs it: a copy that rotted in the bucket (same
 * size, other bytes: only its sha256 tells) is found, deleted there and copied again from the primary, checked; one
 * the primary cannot give again (its own backup damaged) stays marked damaged in the copy; a backup rotted on the
 * primary is copied back from an intact copy. Each said in the channel.
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

  it('copies a rotted copy again from the primary, marks one the primary cannot give again, heals the primary from a copy', async () => {
    const day = (d: number) => new Date(Date.now() - d * 86_400_000).toISOString();
    const bodies = [randomBytes(300_000), randomBytes(200_000), randomBytes(100_000)];
    const [a, b, c] = [
      await storeBackup(kit.storage, 'shop', 'shop-20261201T020000Z', day(2), bodies[0]),
      await storeBackup(kit.storage, 'shop', 'shop-20261202T020000Z', day(1), bodies[1]),
      await storeBackup(kit.storage, 'shop', 'shop-20261203T020000Z', day(0.5), bodies[2]),
    ];
    if (!a || !b || !c) throw new Error('fixtures');
    for (const m of [a, b, c]) await copyBackup(kit.storage, s3, m, { log: kit.log });
    // c rots on the primary's disk instead: its copy is whole.
    const primaryFile = join(kit.backupDir, 'shop', c.backupId, 'database.pgdump.zst');
    const rotted = Buffer.from(bodies[2] as Buffer);
    rotted[500] = (rotted[500] as number) ^ 0xff;
    await writeFile(primaryFile, rotted);
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
      scrub: redisScrubState(kit.redis, kit.prefix),
      copyScrub: { state: (copy) => copyScrubState(kit.redis, kit.prefix, copy), claim: repairClaim(kit.redis, kit.prefix, 'test-worker') },
    });
    // A run reads a seventh of what each storage holds, at least one backup, longest unread first: on the primary a,
    // then c (b is known damaged there); in the copy a, then b.
    for (const day of [1, 2]) {
      const job = await kit.runJob(processor, { dryRun: false }, { jobId: `retention-copy-scrub-${day}` });
      expect(job.failedReason).toBeUndefined();
    }

    // a: whole again in the bucket, byte for byte the primary's, and listed.
    expect((await raw.get(keyOf(a.backupId))).equals(bodies[0] as Buffer)).toBe(true);
    expect((await s3.list('shop')).map((m) => m.backupId).sort()).toEqual([a.backupId, c.backupId]);
    // b: marked damaged there, so no listing of the copy offers it.
    expect(s3.damaged('shop').map((d) => d.backupId)).toEqual([b.backupId]);

    const said = [...kit.slack.messages.values()]
      .map((m) => m.text ?? '')
      .filter((t) => t.includes('s3://'))
      .join('\n');
    expect(said).toContain(
      `:warning: The copy of backup ${a.backupId} of shop in s3://${server.bucket}/offsite was damaged (the checksum scrub found artifact corrupted: database.pgdump.zst (sha256`,
    );
    expect(said).toContain('it was rewritten from the primary and read back whole.');
    // b, damaged on both sides: found when the primary's b was to be copied back from it, marked there, said once.
    expect(said).toContain(
      `:rotating_light: The copy of backup ${b.backupId} of shop in s3://${server.bucket}/offsite is damaged too: a repair of the primary from it found artifact corrupted: database.pgdump.zst`,
    );
    expect(said.split(b.backupId).length - 1).toBe(1);
    // c: copied back onto the primary from the copy, whole, listed again; no "is damaged" for it.
    expect((await readFile(primaryFile)).equals(bodies[2] as Buffer)).toBe(true);
    expect((await kit.storage.list('shop')).map((m) => m.backupId)).toContain(c.backupId);
    expect(said).toContain(
      `:warning: Backup ${c.backupId} of shop was damaged on the primary (the checksum scrub found artifact corrupted: database.pgdump.zst (sha256`,
    );
    expect(said).toContain(`it was rewritten from the copy in s3://${server.bucket}/offsite and read back whole.`);
    expect(said).not.toContain(`:rotating_light: Backup ${c.backupId}`);
    // Each rewrite has its own line in the audit trail, not a retention deletion's.
    const repairs = (await audit.tail(100)).filter((e) => e.what === 'scrub-repair').map((e) => `${e.args}: ${e.result}`);
    expect(repairs).toEqual([
      `s3://${server.bucket}/offsite ${a.backupId}: rewritten from ${kit.storage.describe()}: it was damaged`,
      `${kit.storage.describe()} ${c.backupId}: rewritten from s3://${server.bucket}/offsite: it was damaged`,
    ]);
  }, 60_000);

  it('never deletes a backup a restore or restore test is reading to copy it again: the next run does', async () => {
    const body = randomBytes(50_000);
    const m = await storeBackup(kit.storage, 'shop', 'shop-20261204T020000Z', new Date().toISOString(), body);
    await copyBackup(kit.storage, s3, m, { log: kit.log });
    const file = join(kit.backupDir, 'shop', m.backupId, 'database.pgdump.zst');
    const rotted = Buffer.from(body);
    rotted[7] = (rotted[7] as number) ^ 0xff;
    await writeFile(file, rotted);
    const claim = repairClaim(kit.redis, kit.prefix, 'cli:host-a:1');
    const repair = (reading: ReadonlySet<string> | null) =>
      repairFromCopies(
        { primary: kit.storage, copies: [{ storage: s3, state: memoryScrubState() }], now: new Date(), log: kit.log, inUse: async () => reading, claim },
        [{ target: 'shop', backupId: m.backupId, why: 'found damaged' }],
      );
    // Read by a restore now, or not known (no Redis): nothing is rewritten, and it is said why.
    for (const [reading, why] of [
      [new Set([m.backupId]), 'a restore or restore test is reading it now; the next run tries again'],
      [null, 'the restores and restore tests running now are unknown (no Redis)'],
    ] as const) {
      const { healing } = await repair(reading);
      expect(healing.healed.size).toBe(0);
      expect(healing.failed[0]?.because).toContain(why);
      expect((await readFile(file)).equals(rotted)).toBe(true);
    }
    // Another process rewriting it now (the worker's retention job beside the CLI's scrub): left to it, and said who.
    const held = await tryRedisLock(kit.redis, repairLockKey(kit.prefix, 'shop', m.backupId), 'worker:host-b:7');
    const other = await repair(new Set());
    expect(other.healing.failed[0]?.because).toBe('another repair (worker:host-b:7) is rewriting it now; the next run tries again');
    expect((await readFile(file)).equals(rotted)).toBe(true);
    await held?.release();
    const { healing } = await repair(new Set());
    expect(healing.healed.get(`shop/${m.backupId}`)).toBe(s3.describe());
    expect((await readFile(file)).equals(body)).toBe(true);
    // Whole again, and no longer marked: listed as any good backup.
    expect((await kit.storage.list('shop')).map((x) => x.backupId)).toContain(m.backupId);
  });

  it("a local rewrite that would take the disk's last room is refused before a byte is written, and done once there is room", async () => {
    const body = randomBytes(80 * 1024);
    const m = await storeBackup(kit.storage, 'shop', 'shop-20261206T020000Z', new Date().toISOString(), body);
    await copyBackup(kit.storage, s3, m, { log: kit.log });
    const file = join(kit.backupDir, 'shop', m.backupId, 'database.pgdump.zst');
    const rotted = Buffer.from(body);
    rotted[11] = (rotted[11] as number) ^ 0xff;
    await writeFile(file, rotted);
    // The primary's disk as statfs would give it: 10 MiB in all, with `free` left (a full disk cannot be made here).
    let free = 500 * 1024;
    const primary = new Proxy(kit.storage, {
      get(t, p) {
        if (p === 'freeSpace') return async () => ({ totalBytes: 10 * 1024 * 1024, freeBytes: free });
        const v = Reflect.get(t, p, t);
        return typeof v === 'function' ? v.bind(t) : v;
      },
    });
    const repair = () =>
      repairFromCopies(
        {
          primary,
          copies: [{ storage: s3, state: memoryScrubState() }],
          now: new Date(),
          log: kit.log,
          inUse: async () => new Set(),
          claim: repairClaim(kit.redis, kit.prefix, 'cli:host-a:2'),
        },
        [{ target: 'shop', backupId: m.backupId, why: 'found damaged' }],
      );
    // 500 KiB free of 10 MiB; 80 KiB more would leave 420, under the 5 % (512 KiB) kept for the backups.
    const refused = await repair();
    expect(refused.healing.healed.size).toBe(0);
    expect(refused.healing.failed[0]?.because).toBe(
      `rewriting it failed: database.pgdump.zst (80.0 KB) was not rewritten: ${kit.storage.describe()} has 500 KB free of 10.0 MB, and the rewrite would leave less than 5 % of it for the backups; free space there; it stays marked damaged and the next run tries again`,
    );
    expect((await readFile(file)).equals(rotted)).toBe(true);
    free = 700 * 1024;
    const { healing } = await repair();
    expect(healing.healed.get(`shop/${m.backupId}`)).toBe(s3.describe());
    expect((await readFile(file)).equals(body)).toBe(true);
  });

  it('a rewrite cut short keeps what was there: the S3 object is not deleted, a local leftover does not block the next', async () => {
    const body = randomBytes(40_000);
    const m = await storeBackup(kit.storage, 'shop', 'shop-20261205T020000Z', new Date().toISOString(), body);
    await copyBackup(kit.storage, s3, m, { log: kit.log });
    const key = `offsite/shop/${m.backupId}/database.pgdump.zst`;
    const stored = await raw.get(key);
    await s3.markDamaged('shop', m.backupId, 'found damaged');
    const writer = await s3.createArtifactWriter('shop', m.backupId, 'database.pgdump.zst', m);
    writer.stream.write(Buffer.from('half of a new file'));
    await writer.abort();
    // Before: the abort deleted the key, the copy's only (almost whole) file.
    expect((await raw.get(key)).equals(stored)).toBe(true);
    // Local: a writer killed mid-way leaves `<file>.partial` in a finished backup; the next rewrite is not refused for it.
    await kit.storage.markDamaged('shop', m.backupId, 'found damaged');
    const partial = join(kit.backupDir, 'shop', m.backupId, 'database.pgdump.zst.partial');
    await writeFile(partial, 'left by a killed repair');
    const again = await kit.storage.createArtifactWriter('shop', m.backupId, 'database.pgdump.zst', m);
    await again.abort();
    expect((await readFile(join(kit.backupDir, 'shop', m.backupId, 'database.pgdump.zst'))).equals(body)).toBe(true);
  });
});
