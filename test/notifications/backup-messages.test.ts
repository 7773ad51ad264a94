import { describe, expect, it } from 'vitest';
import { backupFailed, backupStarted, backupSucceeded, type BackupRequestInfo } from '../../src/notifications/backup-messages.ts';
import { restoreTestError, restoreTestRunning, type RestoreJobInfo } from '../../src/notifications/restore-messages.ts';
import type { ChannelMessage } from '../../src/notifications/types.ts';
import { makeManifest } from '../fixtures/backups.ts';

/** A finished pre-migration backup as its manifest describes it (only what the messages read matters here). */
const manifest = makeManifest({
  target: 'shop',
  kind: 'pre-migration',
  retentionClass: 'pre-migration',
  retainUntil: '2027-02-23T01:00:00.000Z',
  requestedBy: { source: 'slack', userId: 'U0ANA' },
  jobId: 'backup-shop-1',
  label: 'JIRA-1234',
  startedAt: '2026-11-25T01:00:00.000Z',
  durationMs: 1000,
  artifacts: [{ bytes: 10, sha256: 'a'.repeat(64), rawBytes: 60 }],
});

/** The context line under a message: who asked, what kind, which label. */
const contextOf = (m: ChannelMessage) =>
  (m.blocks ?? [])
    .filter((b) => b.type === 'context')
    .flatMap((b) => (b.elements as Array<{ text: string }>).map((e) => e.text))
    .join(' ');

describe('backup messages of a pre-migration backup', () => {
  const req: BackupRequestInfo = {
    target: 'shop',
    jobId: 'backup-shop-1',
    requestedBy: { source: 'slack', userId: 'U0ANA' },
    kind: 'pre-migration',
    label: 'JIRA-1234',
  };

  it('keep the label in every state, so the verdict still says which migration it is for', () => {
    for (const message of [backupStarted(req, 'dumping'), backupSucceeded(req, manifest), backupFailed(req, 'disk full', 'paged')]) {
      expect(contextOf(message)).toContain('pre-migration · JIRA-1234 · requested by <@U0ANA>');
    }
  });

  it('say the deadline as a Slack date, each reader in their own zone, the configured zone as its fallback', () => {
    const fields = JSON.stringify(backupSucceeded(req, manifest, 'Europe/Paris').blocks);
    // 2027-02-23T01:00:00Z is 02:00 in Paris (UTC+01:00).
    expect(fields).toContain('*Kept until*\\n<!date^1803344400^{date_short_pretty} {time}|Tue 2027-02-23 02:00 UTC+01:00>');
  });

  it('escape a label and say nothing of one a backup does not have', () => {
    expect(contextOf(backupFailed({ ...req, label: 'a<b' }, 'x', 'paged'))).toContain('pre-migration · a&lt;b ·');
    expect(contextOf(backupStarted({ ...req, kind: 'manual', label: null }))).toBe('job `backup-shop-1` · manual · requested by <@U0ANA>');
  });
});

describe('restore-test messages', () => {
  const req: RestoreJobInfo = { target: 'shop', backupId: 'shop-20261125T010000Z', jobId: 'restore-test-1', requestedBy: { source: 'slack', userId: 'U0ANA' } };

  it('name the migration a pre-migration test is for, and nothing for a plain request', () => {
    expect(contextOf(restoreTestRunning({ ...req, purpose: 'pre-migration JIRA-1234' }, 'restoring'))).toBe(
      'job `restore-test-1` · target shop · requested by <@U0ANA> · pre-migration JIRA-1234',
    );
    expect(contextOf(restoreTestError({ ...req, purpose: 'pre-migration JIRA-1234' }, 'no CREATEDB', 'paged'))).toContain(
      'requested by <@U0ANA> · pre-migration JIRA-1234 · paged',
    );
    expect(contextOf(restoreTestRunning(req, 'restoring'))).toBe('job `restore-test-1` · target shop · requested by <@U0ANA>');
  });
});
