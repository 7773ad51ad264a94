import { describe, expect, it } from 'vitest';
import { ENCRYPTION_ADVICE } from '../../src/crypto/advice.ts';
import { baseBackupDetails, baseBackupFailed, baseBackupStarted, baseBackupSucceeded } from '../../src/notifications/base-backup-messages.ts';
import { baseBackupUnsupported, unencryptedRefusal } from '../../src/postgres/pitr/take-base-backup.ts';

const req = { target: 'app', jobId: 'base-backup-app-1', requestedBy: { source: 'slack', userId: 'U1', userName: 'ann' }, label: null };
const b = {
  id: 'app-base-20261206T010000Z',
  bytes: 3 * 1024 * 1024,
  rawBytes: 30 * 1024 * 1024,
  sha256: 'f'.repeat(64),
  encryption: 'none' as const,
  startedAt: '2026-12-06T01:00:00.000Z',
  finishedAt: '2026-12-06T01:00:07.500Z',
  startLsn: '0/2000028',
  endLsn: '0/2000138',
  timeline: 1,
  file: 'base.tar.zst',
  pgBasebackupVersion: 'pg_basebackup (PostgreSQL) 15.10',
};

describe('base backup channel messages', () => {
  it('say running, then the verdict with size, duration, the WAL range and whether it is encrypted', () => {
    expect(baseBackupStarted(req).text).toBe('Base backup of app running (job base-backup-app-1)');
    const ok = baseBackupSucceeded(req, b);
    expect(ok.text).toBe('Base backup of app succeeded: app-base-20261206T010000Z, 3.0 MB in 7.5 s, WAL 0/2000028 to 0/2000138, NOT encrypted');
    const shown = JSON.stringify(ok.blocks);
    expect(shown).toContain('3.0 MB stored (cluster 30.0 MB)');
    expect(shown).toContain(':warning: NOT encrypted (no BACKUP_ENCRYPTION_RECIPIENT)');
    expect(shown).toContain('base backup (point-in-time recovery), on demand · requested by <@U1>');
    expect(JSON.stringify(baseBackupSucceeded({ ...req, scheduled: true, requestedBy: { source: 'schedule' } }, { ...b, encryption: 'age' }).blocks)).toMatch(
      /encrypted with age.*scheduled by `base-backup` · requested by the schedule/,
    );
  });

  it('call it recoverable only once its WAL is archived', () => {
    expect(JSON.stringify(baseBackupSucceeded(req, b, { state: 'archived' }).blocks)).toContain('to any moment after it ended: its WAL is archived');
    expect(JSON.stringify(baseBackupSucceeded(req, b, { state: 'archived' }, true).blocks)).toContain('hashed as uploaded to S3, size checked there');
    const pending = baseBackupSucceeded(req, b, { state: 'pending', missing: '000000010000000000000002' });
    expect(pending.text).toMatch(/; NOT recoverable yet: WAL segment 000000010000000000000002 is not archived$/);
    expect(JSON.stringify(pending.blocks)).toContain(':warning: not yet: WAL segment `000000010000000000000002` is not archived');
  });

  it('put where it is, its whole sha256, the tool and how to restore from it in the thread', () => {
    const t = baseBackupDetails('/var/backups', { ...b, target: 'app' }).text;
    expect(t).toContain('/var/backups/app/_base/app-base-20261206T010000Z/base.tar.zst');
    expect(t).toContain(`sha256 ${'f'.repeat(64)} (3145728 bytes, read back after writing)`);
    expect(t).toContain('pg_basebackup (PostgreSQL) 15.10');
    expect(t).toContain('`pg-backup-bot restore-pitr app --time=… --data-dir=…`');
    const inS3 = baseBackupDetails('s3://bucket/pgbb', { ...b, target: 'app' }).text;
    expect(inS3).toContain('s3://bucket/pgbb/app/_base/app-base-20261206T010000Z/base.tar.zst');
    expect(inS3).toContain(`sha256 ${'f'.repeat(64)} (3145728 bytes, hashed as uploaded, size checked in S3)`);
  });

  it('say what failed, that nothing was stored, and who was paged', () => {
    const m = baseBackupFailed(
      req,
      'pg_basebackup is not installed: install postgresql-client-15.',
      'PagerDuty page queued (error, dedup key pg-backup-bot/app/base-backup)',
    );
    expect(m.text).toBe('Base backup of app FAILED: pg_basebackup is not installed: install postgresql-client-15.');
    expect(JSON.stringify(m.blocks)).toContain('no base backup was stored · PagerDuty page queued (error, dedup key pg-backup-bot/app/base-backup)');
  });
});

describe('base backup refusals, shared by the CLI and the worker', () => {
  const target = { name: 'app', environment: 'production' as const, pitr: { url: 'postgres://x', slot: 's', walRetentionDays: 7, rpoSeconds: 3600 } };
  it('refuses a production target without a key to encrypt to, unless the config opted out', () => {
    const none = { recipients: [], optedOut: false };
    expect(unencryptedRefusal({ encryption: none } as never, target)).toBe(`Refusing an unencrypted base backup of app (production): ${ENCRYPTION_ADVICE}.`);
    expect(unencryptedRefusal({ encryption: { ...none, optedOut: true } } as never, target)).toBeNull();
    expect(unencryptedRefusal({ encryption: none } as never, { ...target, environment: 'staging' })).toBeNull();
    expect(unencryptedRefusal({ encryption: { ...none, recipients: ['age1x'] } } as never, target)).toBeNull();
  });

  it('says why a target cannot have one (no pitr section), and takes one with S3 as the primary store', () => {
    expect(baseBackupUnsupported({}, { name: 'plain' })).toMatch(/^Target plain has no pitr section/);
    expect(baseBackupUnsupported({ s3: { mode: 'primary' } } as never, target)).toBeNull();
    expect(baseBackupUnsupported({}, target)).toBeNull();
  });
});
