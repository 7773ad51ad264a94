import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type AuditLog, createAuditLog } from '../../src/audit.ts';
import type { Config } from '../../src/config.ts';
import { type EphemeralPostgres, startEphemeralPostgres } from '../../src/dev/ephemeral.ts';
import { formatInZone } from '../../src/schedules/time.ts';
import type { BaseBackup } from '../../src/postgres/pitr/base-backup.ts';
import { retentionProcessor } from '../../src/workers/retention-worker.ts';
import { backdateBase, pitrArchiveWithBases } from '../support/pitr-archive.ts';
import { startWorkerKit, type WorkerKit } from './worker-kit.ts';

/**
 * The scheduled retention job on a target with point-in-time recovery: two real base backups of a cluster of its own
 * (backdated to 20 and 8 days ago, WAL kept 7 days), the job run on a real BullMQ worker. The old base backup and the
 * WAL before the newer one go; the channel message says the window before and after and what was deleted; the audit
 * trail has each deletion under the job's id.
 */
let kit: WorkerKit;
let source: EphemeralPostgres;
let auditDir: string;
let audit: AuditLog;
let config: Config;
let bases: BaseBackup[];

beforeAll(async () => {
  kit = await startWorkerKit({ pgUrl: inject('pgUrl'), redisUrl: inject('redisUrl') });
  source = await startEphemeralPostgres();
  auditDir = await mkdtemp(join(tmpdir(), 'pgbb-audit-'));
  audit = createAuditLog(auditDir, kit.log);
  const made = await pitrArchiveWithBases({ url: source.url, root: kit.backupDir, spool: join(auditDir, 'spool'), target: 'shop', slot: 'pgbb_rw', count: 2 });
  bases = [await backdateBase(kit.backupDir, made.bases[0] as BaseBackup, 20), await backdateBase(kit.backupDir, made.bases[1] as BaseBackup, 8)];
  const shop = kit.config.targets[0] as Config['targets'][number];
  config = { ...kit.config, targets: [{ ...shop, name: 'shop', pitr: { url: source.url, slot: 'pgbb_rw', walRetentionDays: 7, rpoSeconds: 3600 } }] };
}, 180_000);

afterAll(async () => {
  await kit?.stop();
  await source?.stop();
  if (auditDir) await rm(auditDir, { recursive: true, force: true });
});

describe('the retention job, with point-in-time recovery', () => {
  it('deletes the old base backup and its WAL, says the window before and after in the channel, and audits each deletion', async () => {
    const walBefore = await readdir(join(kit.backupDir, 'shop', '_wal'));
    const job = await kit.runJob(
      retentionProcessor({ storage: kit.storage, copies: [], queues: kit.queues, notifier: kit.notifier, audit, log: kit.log, config }),
      { dryRun: false },
      { jobId: 'rn-pitr' },
    );
    expect(job.failedReason).toBeUndefined();
    expect((await readdir(join(kit.backupDir, 'shop', '_base'))).sort()).toEqual([bases[1]?.id]);
    const walAfter = await readdir(join(kit.backupDir, 'shop', '_wal'));
    expect(walAfter.length).toBeLessThan(walBefore.length);
    const post = [...kit.slack.messages.values()].map((m) => m.text ?? '').find((t) => t.includes('Point-in-time recovery of shop'));
    expect(post).toBeDefined();
    expect(post).toContain(`• window after: ${formatInZone(new Date((bases[1] as BaseBackup).finishedAt), 'UTC')} to `);
    expect(post).toMatch(/• base backups: deleted 1 \([^)]+\), kept 1/);
    expect(post).toContain(`• WAL files: deleted ${(walBefore.length - walAfter.length) / 2} (`);
    await audit.flush();
    const trail = await readFile(join(auditDir, '_audit', 'audit.jsonl'), 'utf8');
    expect(trail).toContain(`"args":"pitr shop base backup ${bases[0]?.id}"`);
    expect(trail).toMatch(/"args":"pitr shop WAL [0-9A-F]{24} … [0-9A-F]{24}".*"jobId":"rn-pitr","result":"deleted WAL/);
  });
});
