import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createAuditLog, type AuditLog } from '../../src/audit.ts';
import { retentionProcessor, type RetentionWorkerDeps } from '../../src/workers/retention-worker.ts';
import { makeRecord } from '../fixtures/records.ts';
import { runSql } from '../support/databases.ts';
import { withClient } from '../support/postgres-helpers.ts';
import { startWorkerKit, type WorkerKit } from './worker-kit.ts';

/**
 * `restore.expireAfterDays`: the daily retention run drops the databases restores made (never one a replacement kept)
 * once they are that old, says so in the channel, names them without dropping on a dry run, and never touches a
 * database no restore record names.
 */
let kit: WorkerKit;
let auditDir: string;
let audit: AuditLog;
const DAY = 86_400_000;
const names = {
  old: `pgbb_restore_20261101t020000_${randomBytes(2).toString('hex')}`,
  fresh: `pgbb_restore_20261203t020000_${randomBytes(2).toString('hex')}`,
  kept: `shop_replaced_20261101t030000${randomBytes(1).toString('hex')}`,
  stranger: `pgbb_restore_20261101t020000_${randomBytes(2).toString('hex')}`,
};

const exists = (name: string) =>
  withClient(inject('pgUrl'), async (c) => ((await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [name])).rowCount ?? 0) > 0);

beforeAll(async () => {
  kit = await startWorkerKit({ pgUrl: inject('pgUrl'), redisUrl: inject('redisUrl') });
  auditDir = await mkdtemp(join(tmpdir(), 'pgbb-audit-'));
  audit = createAuditLog(auditDir, kit.log);
  for (const n of Object.values(names)) await runSql(inject('pgUrl'), `CREATE DATABASE "${n}"`);
  const at = (daysAgo: number) => new Date(Date.now() - daysAgo * DAY).toISOString();
  const restore = { kind: 'restore' as const, target: 'shop', backupId: 'shop-20261101T020000Z', passed: true, dropped: false };
  await kit.storage.writeRecord(
    makeRecord({ ...restore, startedAt: at(33), database: names.old, selection: { tables: [], schemas: [], into: null, created: true } }),
  );
  await kit.storage.writeRecord(
    makeRecord({ ...restore, startedAt: at(1), database: names.fresh, selection: { tables: [], schemas: [], into: null, created: true } }),
  );
  await kit.storage.writeRecord(
    makeRecord({ ...restore, startedAt: at(33), database: 'shop', keptAs: names.kept, selection: { tables: [], schemas: [], into: 'shop', created: false } }),
  );
});

afterAll(async () => {
  for (const n of Object.values(names)) await runSql(inject('pgUrl'), `DROP DATABASE IF EXISTS "${n}" WITH (FORCE)`);
  await kit?.stop();
  if (auditDir) await rm(auditDir, { recursive: true, force: true });
});

const deps = (days: number | null): RetentionWorkerDeps => ({
  storage: kit.storage,
  copies: [],
  queues: kit.queues,
  notifier: kit.notifier,
  audit,
  log: kit.log,
  config: { ...kit.config, restore: { ...kit.config.restore, expireAfterDays: days } },
});

const posts = () => [...kit.slack.messages.values()].map((m) => m.text ?? '').filter((t) => /restore\.expireAfterDays/.test(t));

describe('retention and the databases restores made', () => {
  it('without restore.expireAfterDays: keeps them all and says nothing about them', async () => {
    await kit.runJob(retentionProcessor(deps(null)), { dryRun: false }, { jobId: 'rr-none' });
    for (const n of Object.values(names)) expect(await exists(n)).toBe(true);
    expect(posts()).toEqual([]);
  });

  it('a dry run names what it would drop and drops nothing', async () => {
    await kit.runJob(retentionProcessor(deps(30)), { dryRun: true }, { jobId: 'rr-dry' });
    const [post] = posts();
    expect(post).toContain(`would drop \`${names.old}\``);
    expect(post).toContain(`kept \`${names.kept}\``);
    expect(post).not.toContain(names.fresh);
    for (const n of Object.values(names)) expect(await exists(n)).toBe(true);
  });

  it('drops restored databases older than the setting, keeps and names one a replacement kept, and drops nothing no record names', async () => {
    await kit.runJob(retentionProcessor(deps(30)), { dryRun: false }, { jobId: 'rr-drop' });
    const post = posts().at(-1) ?? '';
    expect(post).toMatch(/Restored databases older than 30 days \(restore\.expireAfterDays\):/);
    expect(post).toContain(`dropped \`${names.old}\``);
    expect(await exists(names.old)).toBe(false);
    // Kept "until an admin drops it", as the confirmation and the verdict said (QA: retention dropped it).
    expect(post).toMatch(
      new RegExp(
        `kept \`${names.kept}\` on .*: the only copy of what was written to shop after its backup; \`/restore drop ${names.kept}\` \\(admins\\) drops it`,
      ),
    );
    expect(await exists(names.kept)).toBe(true);
    expect(await exists(names.fresh)).toBe(true);
    // Named like a restore's database, but no record of ours: not ours to drop.
    expect(await exists(names.stranger)).toBe(true);
  });
});
