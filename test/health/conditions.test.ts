import { describe, expect, it } from 'vitest';
import { HEALTH_CONDITIONS, evaluateHealth, pagerCondition, resolveThresholds } from '../../src/health/index.ts';
import { HOUR, MB, ago, dailyBackups, healthyInput, pick } from './fixtures.ts';

const GB = 1024 ** 3;

describe('evaluateHealth', () => {
  it('reports every condition, in a fixed order, all ok for a healthy target (the WAL stream only where there is one)', () => {
    const results = evaluateHealth(healthyInput());
    expect(results.map((r) => r.condition)).toEqual(
      // `unchecked` is the worker's (workers/target-health.ts): a check that could not run, never an evaluation's.
      HEALTH_CONDITIONS.filter((c) => !c.startsWith('wal-') && c !== 'base-backup' && c !== 'pitr-test-failing' && c !== 'rpo' && c !== 'unchecked'),
    );
    const measured = { rpoObjectiveSeconds: '3600', rpoMeasuredAt: ago(2000).toISOString(), currentLsn: '0/3000148', archivedLsn: '0/3000148' };
    const withPitr = evaluateHealth({
      ...healthyInput(),
      wal: {
        state: {
          receiver: 'up',
          since: ago(HOUR).toISOString(),
          ...measured,
          offsiteWhere: 's3://b/p/shop',
          offsitePending: '0',
          offsiteNewest: '000000010000000000000003',
        },
      },
      baseBackup: { newest: { id: 'shop-base-x', finishedAt: ago(HOUR).toISOString() }, lastRun: null, watchedSince: null, maxAgeHours: 192 },
      pitrTest: null,
    });
    for (const r of withPitr) expect(r.status, `${r.condition}: ${r.evidence}`).toBe('ok');
    // wal-gap and wal-slot come with the archive's facts (test/health/wal-conditions.test.ts); wal-offsite only where
    // the archive is copied to S3 (test/postgres/pitr/offsite.test.ts).
    expect(withPitr.map((r) => r.condition)).toEqual(HEALTH_CONDITIONS.filter((c) => c !== 'wal-gap' && c !== 'wal-slot' && c !== 'unchecked'));
    for (const r of results) {
      expect(r.status, `${r.condition}: ${r.evidence}`).toBe('ok');
      expect(r.summary).toContain('shop');
    }
  });

  it('pitr-test-failing: the last PITR restore test, failed or could not run; none yet is no failure; paged under the worker’s key', () => {
    const pitr = { ...healthyInput(), wal: { state: { receiver: 'up' as const, since: ago(HOUR).toISOString() } } };
    expect(pick(evaluateHealth({ ...pitr, pitrTest: null }), 'pitr-test-failing')).toMatchObject({
      status: 'ok',
      summary: 'No PITR restore test of shop recorded yet',
    });
    const passed = pick(evaluateHealth({ ...pitr, pitrTest: { ok: true, at: ago(HOUR), reason: null, jobId: '7' } }), 'pitr-test-failing');
    expect(passed).toMatchObject({ status: 'ok', severity: 'critical', summary: 'The last PITR restore test of shop passed' });
    expect(passed.evidence).toMatch(/^passed at .* \(job 7\)$/);
    const reason = 'WAL archive: segment 000000010000000000000004 is missing from the archive';
    const failed = pick(evaluateHealth({ ...pitr, pitrTest: { ok: false, at: ago(HOUR), reason, jobId: '8' } }), 'pitr-test-failing');
    expect(failed).toMatchObject({ status: 'failing', severity: 'critical', summary: `The last PITR restore test of shop failed: ${reason}` });
    expect(failed.evidence).toContain(`(job 8): ${reason}; \`/restore-test pitr shop\` runs it again`);
    // The worker pages it as pitr-restore-test: health must not open a second incident under another key.
    expect(pagerCondition('pitr-test-failing')).toBe('pitr-restore-test');
    // A target without point-in-time recovery has no such condition.
    expect(evaluateHealth(healthyInput()).map((r) => r.condition)).not.toContain('pitr-test-failing');
  });

  it('stale: the run making the next backup is on time until it is slow, not paged at the limit (QA: a 1–2 h dump paged every run)', () => {
    // Newest daily backup 25 h 30 min old (limit 25 h); the next began 1 h 30 min ago and runs on.
    const input = healthyInput({ backups: dailyBackups([384 * MB, 380 * MB], 25.5 * HOUR) });
    expect(pick(evaluateHealth(input), 'stale').status).toBe('failing');
    const running = healthyInput({ ...input, running: [{ jobId: '42', startedAt: ago(1.5 * HOUR) }] });
    expect(pick(evaluateHealth(running), 'stale')).toMatchObject({
      status: 'ok',
      evidence: expect.stringMatching(/; a backup running since .* counts as on time until it has run 2 h 0 min$/),
    });
    // Past slow's limit it is late after all: stale fails (and slow says why).
    const late = healthyInput({ ...input, backups: dailyBackups([384 * MB, 380 * MB], 26.5 * HOUR), running: [{ jobId: '42', startedAt: ago(2.5 * HOUR) }] });
    expect(pick(evaluateHealth(late), 'stale').status).toBe('failing');
    expect(pick(evaluateHealth(late), 'slow').status).toBe('failing');
    // A job begun before the newest backup (stuck for a day) is no excuse.
    const stuck = healthyInput({ ...input, running: [{ jobId: '40', startedAt: ago(26 * HOUR) }] });
    expect(pick(evaluateHealth(stuck), 'stale').status).toBe('failing');
  });

  it('gives each condition its fixed severity', () => {
    const input = { ...healthyInput(), wal: { state: { receiver: 'up' as const, since: ago(HOUR).toISOString() } } };
    const severities = Object.fromEntries(evaluateHealth(input).map((r) => [r.condition, r.severity]));
    expect(severities).toEqual({
      stale: 'critical',
      damaged: 'error',
      size: 'warning',
      'data-drift': 'warning',
      slow: 'warning',
      disk: 'warning',
      'backup-failing': 'error',
      'restore-test-failing': 'critical',
      unencrypted: 'warning',
      'wal-stream': 'critical',
      ...(severities['base-backup'] ? { 'base-backup': 'error' } : {}),
      rpo: 'critical',
    });
  });

  it('damaged: fails naming the first three and counting the rest; with no good backup left, stale says they are damaged, not "none yet"', () => {
    const damaged = ['a', 'b', 'c', 'd'].map((x) => ({
      backupId: `shop-2026120${x === 'a' ? 1 : 2}T000000Z-${x}`,
      why: 'artifact database.pgdump.zst is missing or has the wrong size',
    }));
    const some = pick(evaluateHealth({ ...healthyInput(), damaged }), 'damaged');
    expect(some).toMatchObject({ status: 'failing', severity: 'error', summary: '4 stored backups of shop are damaged and cannot be restored', value: 4 });
    expect(some.evidence).toContain(
      `${damaged[2]?.backupId} (artifact database.pgdump.zst is missing or has the wrong size); and 1 more (\`/backup list shop\`)`,
    );
    expect(pick(evaluateHealth({ ...healthyInput(), damaged: [] }), 'damaged').status).toBe('ok');
    // WAL lost from a PITR archive (health/collect.ts) is said apart from backups.
    const wal = { backupId: 'WAL 000000010000000000000004', why: 'indexed as archived, its file is gone from the archive', wal: true as const };
    expect(pick(evaluateHealth({ ...healthyInput(), damaged: [wal] }), 'damaged').summary).toBe('1 WAL file of shop is lost from the archive');
    expect(pick(evaluateHealth({ ...healthyInput(), damaged: [...damaged.slice(0, 2), wal] }), 'damaged').summary).toBe(
      '2 stored backups of shop are damaged and cannot be restored; 1 WAL file is lost from the archive',
    );
    // Files of the archive the checksum scrub set aside (pitr-scrub.ts) are said as such; each other set is a new episode.
    const aside = {
      backupId: 'base backup shop-base-1',
      why: 'the checksum scrub read its stored file three times',
      wal: true as const,
      setAside: true as const,
    };
    const withAside = pick(evaluateHealth({ ...healthyInput(), damaged: [aside] }), 'damaged');
    expect(withAside.summary).toBe("1 file of shop's point-in-time archive was found damaged by the checksum scrub");
    const both = pick(evaluateHealth({ ...healthyInput(), damaged: [wal, aside] }), 'damaged');
    expect(both.summary).toBe('1 WAL file of shop is lost from the archive; 1 file of its point-in-time archive was found damaged by the checksum scrub');
    expect(both.episode).not.toBe(withAside.episode);
    expect(pick(evaluateHealth({ ...healthyInput(), damaged: [aside, wal] }), 'damaged').episode).toBe(both.episode);
    const none = evaluateHealth({ ...healthyInput(), backups: [], damaged: damaged.slice(0, 1) });
    expect(pick(none, 'stale')).toMatchObject({ status: 'failing', summary: 'Backups of shop are stale: no restorable backup of shop: 1 stored is damaged' });
    // The conditions judged on the newest good backup say the same, not "no backup yet"; WAL lost is not counted.
    const allDamaged = evaluateHealth({ ...healthyInput(), backups: [], damaged: [...damaged.slice(0, 2), wal], encrypted: null });
    expect(['size', 'slow', 'unencrypted'].map((c) => pick(allDamaged, c as 'size').evidence)).toEqual(
      Array(3).fill('no good backup (the 2 stored are damaged)'),
    );
    expect(pick(allDamaged, 'size').summary).toBe('Backup size of shop cannot be judged: no good backup (the 2 stored are damaged)');
    expect(['size', 'slow', 'unencrypted'].map((c) => pick(evaluateHealth({ ...healthyInput(), backups: [], encrypted: null }), c as 'size').evidence)).toEqual(
      Array(3).fill('no backup yet'),
    );
    // WAL lost from the archive is no backup: a target waiting for its first backup still waits, quietly.
    const waiting = evaluateHealth({ ...healthyInput(), backups: [], damaged: [wal], firstBackupDueAt: new Date(Date.now() + HOUR) });
    expect(pick(waiting, 'stale')).toMatchObject({ status: 'failing', severity: 'warning', quiet: true });
    // A target never backed up at all is still "none yet".
    expect(pick(evaluateHealth({ ...healthyInput(), backups: [], damaged: [] }), 'stale').summary).toBe('Backups of shop are stale: no backup of shop yet');
  });

  it('judges the WAL stream: up is ok, a restart within five minutes is ok, longer is failing with why, never started is failing', () => {
    const wal = (state: NonNullable<Parameters<typeof evaluateHealth>[0]['wal']>['state']) =>
      pick(evaluateHealth({ ...healthyInput(), wal: { state } }), 'wal-stream');
    expect(wal({ receiver: 'up', since: ago(HOUR).toISOString(), lastArchived: '000000010000000000000009' })).toMatchObject({
      status: 'ok',
      evidence: expect.stringMatching(/^streaming since .*; newest whole segment archived 000000010000000000000009$/),
    });
    expect(wal({ receiver: 'down', since: ago(60_000).toISOString(), error: 'pg_receivewal stopped: the server is not reachable' })).toMatchObject({
      status: 'ok',
      evidence: expect.stringMatching(/within the 5-minute grace\)$/),
    });
    expect(wal({ receiver: 'down', since: ago(10 * 60_000).toISOString(), error: 'cannot stream: the role has no REPLICATION attribute' })).toMatchObject({
      status: 'failing',
      summary: 'The WAL stream of shop is down',
      evidence: expect.stringMatching(/^down since .*: cannot stream: the role has no REPLICATION attribute; nothing archived yet$/),
    });
    expect(wal(null)).toMatchObject({ status: 'failing', summary: 'The WAL stream of shop is not running' });
  });

  it('judges a receiver that runs but receives nothing (QA: frozen, it read "streaming"): failing once its slot stood still 5 minutes while the server moved on', () => {
    const wal = (state: NonNullable<Parameters<typeof evaluateHealth>[0]['wal']>['state']) =>
      pick(evaluateHealth({ ...healthyInput(), wal: { state } }), 'wal-stream');
    const up = {
      receiver: 'up' as const,
      since: ago(HOUR).toISOString(),
      lastArchived: '000000010000000000000009',
      currentLsn: '0/C000060',
      rpoMeasuredAt: ago(2000).toISOString(),
    };
    expect(wal({ ...up, flushedLsn: '0/9A00000', flushedMovedAt: ago(6 * 60_000).toISOString() })).toMatchObject({
      status: 'failing',
      summary: 'The WAL stream of shop has stalled',
      evidence: expect.stringMatching(
        /^pg_receivewal runs \(since .*\) but has received nothing since .*: the server is at 0\/C000060, the slot at 0\/9A00000; newest whole segment archived 000000010000000000000009\. A frozen process/,
      ),
    });
    // Within the grace, or an idle server the slot has caught up with: up.
    expect(wal({ ...up, flushedLsn: '0/9A00000', flushedMovedAt: ago(4 * 60_000).toISOString() }).status).toBe('ok');
    expect(wal({ ...up, flushedLsn: '0/C000060', flushedMovedAt: ago(HOUR).toISOString() }).status).toBe('ok');
    // A sampler that fails keeps its last figures: not judged (the rpo condition says the RPO is unknown).
    expect(wal({ ...up, flushedLsn: '0/9A00000', flushedMovedAt: ago(HOUR).toISOString(), rpoError: 'the server could not be asked' }).status).toBe('ok');
    // The receiver just restarted: the slot stood still while it was down, counted from its start.
    expect(wal({ ...up, since: ago(60_000).toISOString(), flushedLsn: '0/9A00000', flushedMovedAt: ago(HOUR).toISOString() }).status).toBe('ok');
  });
});

describe('evaluateHealth: disk', () => {
  const disk = (free: number) => pick(evaluateHealth(healthyInput({ disk: { totalBytes: 100 * GB, freeBytes: free * GB } })), 'disk');
  const MB = 1024 ** 2;

  it('warns at 19 % free and is ok at 21 %', () => {
    const low = disk(19);
    expect(low).toMatchObject({ status: 'failing', severity: 'warning', value: 0.19 });
    expect(low.evidence).toBe(
      '19 % free (19.0 GB of 100 GB), limit 20 %; the next backup needs about 480 MB (the newest backup (shop-20261124T090000Z) took 384 MB, plus 25 %)',
    );
    expect(low.summary).toBe('Backup disk of shop is nearly full: 19 % free (19.0 GB of 100 GB), limit 20 %');
    expect(disk(21).status).toBe('ok');
  });

  it('fails when the next backup would not fit, however large the disk (the newest backup plus 25 %)', () => {
    // 30 % free of a 1.5 GB disk: above the ratio, below what a 384 MB backup plus growth needs.
    const tight = pick(evaluateHealth(healthyInput({ disk: { totalBytes: 1500 * MB, freeBytes: 450 * MB } })), 'disk');
    expect(tight).toMatchObject({ status: 'failing', severity: 'warning' });
    expect(tight.summary).toBe(
      'Backup disk of shop has too little room for the next backup: 450 MB free, the next backup needs about 480 MB (the newest backup (shop-20261124T090000Z) took 384 MB, plus 25 %)',
    );
    expect(pick(evaluateHealth(healthyInput({ disk: { totalBytes: 1500 * MB, freeBytes: 490 * MB } })), 'disk').status).toBe('ok');
    // A larger newest base backup (point-in-time recovery) is what the disk must hold.
    const base = { newest: { id: 'shop-base-1', finishedAt: ago(HOUR).toISOString(), bytes: 900 * MB }, lastRun: null, watchedSince: null, maxAgeHours: 192 };
    const withBase = pick(evaluateHealth({ ...healthyInput({ disk: { totalBytes: 1500 * MB, freeBytes: 900 * MB } }), baseBackup: base }), 'disk');
    expect(withBase.status).toBe('failing');
    expect(withBase.summary).toContain('the newest base backup (shop-base-1) took 900 MB');
  });

  it('fails after a backup ran out of space, until one succeeds, though the failed one left the disk roomy again', () => {
    const full = {
      ok: false,
      at: ago(HOUR),
      reason: 'The backup disk is full (local:/backups); free space or delete old backups, then run the backup again.',
      jobId: '9',
    };
    const after = pick(evaluateHealth(healthyInput({ lastBackupRun: full })), 'disk');
    expect(after).toMatchObject({ status: 'failing', severity: 'warning' });
    expect(after.summary).toBe('Backup disk of shop is short of space: the last backup ran out of space at 2026-11-24 11:00 UTC and none has succeeded since');
    // With no backup to size it by, and no figure for the disk (a bucket), the failed run still says it.
    expect(pick(evaluateHealth(healthyInput({ backups: [], lastBackupRun: full, disk: null })), 'disk')).toMatchObject({
      status: 'failing',
      evidence: 'the last backup ran out of space at 2026-11-24 11:00 UTC and none has succeeded since; free space unknown',
    });
    // A backup that failed for another reason is not the disk's fault; a newer finished backup clears it.
    expect(pick(evaluateHealth(healthyInput({ lastBackupRun: { ...full, reason: 'pg_dump: error: connection refused' } })), 'disk').status).toBe('ok');
    expect(pick(evaluateHealth(healthyInput({ lastBackupRun: { ...full, at: ago(30 * HOUR) } })), 'disk').status).toBe('ok');
  });

  it('is ok with "unknown" when there is no figure', () => {
    expect(pick(evaluateHealth(healthyInput({ disk: null })), 'disk')).toMatchObject({ status: 'ok', evidence: 'unknown' });
  });
});

describe('evaluateHealth: backup-failing', () => {
  it('fails with the reason and the time, and recovers on the next good run', () => {
    const lastBackupRun = { ok: false, at: ago(HOUR), reason: 'pg_dump: error: connection refused', jobId: '42' };
    const r = pick(evaluateHealth(healthyInput({ lastBackupRun })), 'backup-failing');
    expect(r).toMatchObject({ status: 'failing', severity: 'error' });
    expect(r.evidence).toBe('last run failed at 2026-11-24 11:00 UTC (job 42): pg_dump: error: connection refused');
    expect(r.summary).toBe('The last backup of shop failed: pg_dump: error: connection refused');
    const next = pick(evaluateHealth(healthyInput({ lastBackupRun: { ...lastBackupRun, ok: true, reason: null } })), 'backup-failing');
    expect(next.status).toBe('ok');
    expect(pick(evaluateHealth(healthyInput({ lastBackupRun: null })), 'backup-failing').status).toBe('ok');
  });
});

describe('evaluateHealth: restore-test-failing', () => {
  it('fails critically with the problems, and recovers when a test passes', () => {
    const lastRestoreTest = {
      passed: false,
      at: ago(2 * HOUR),
      problems: ['public.orders: 10 rows, expected 12', 'b', 'c', 'd'],
      backupId: 'shop-20261124T030000Z',
    };
    const r = pick(evaluateHealth(healthyInput({ lastRestoreTest })), 'restore-test-failing');
    expect(r).toMatchObject({ status: 'failing', severity: 'critical' });
    expect(r.summary).toBe('The last restore test of shop failed: public.orders: 10 rows, expected 12');
    expect(r.evidence).toBe('restore test of shop-20261124T030000Z at 2026-11-24 10:00 UTC failed: public.orders: 10 rows, expected 12; b; c (and 1 more)');
    const passed = pick(evaluateHealth(healthyInput({ lastRestoreTest: { ...lastRestoreTest, passed: true, problems: [] } })), 'restore-test-failing');
    expect(passed.status).toBe('ok');
  });
});

describe('evaluateHealth: unencrypted', () => {
  const check = (encrypted: boolean | null | undefined) => pick(evaluateHealth(healthyInput(encrypted === undefined ? {} : { encrypted })), 'unencrypted');

  it('warns when the newest backup of a target that must be encrypted is not, and names it', () => {
    const r = check(false);
    expect(r).toMatchObject({ status: 'failing', severity: 'warning', summary: 'The newest backup of shop (production) is not encrypted' });
    expect(r.evidence).toMatch(/^newest backup shop-\d{8}T\d{6}Z is stored unencrypted; set BACKUP_ENCRYPTION_RECIPIENT/);
  });

  it('is ok when it is encrypted, and when nobody asked (not required, or no backup)', () => {
    expect(check(true)).toMatchObject({ status: 'ok', evidence: expect.stringMatching(/is encrypted with age$/) });
    expect(check(null).status).toBe('ok');
    expect(check(undefined).status).toBe('ok');
  });
});

describe('resolveThresholds', () => {
  it('keeps defaults for keys left out or undefined', () => {
    const t = resolveThresholds({ staleHours: 49 });
    expect(t).toMatchObject({ staleHours: 49, sizeWindow: 7, slowMs: 2 * HOUR, diskFreeMinRatio: 0.2, minBytes: null });
  });
});

describe('pagerCondition', () => {
  it('pages worker-reported failures under the keys the workers already use, so one failure is one incident', () => {
    expect(pagerCondition('backup-failing')).toBe('backup');
    expect(pagerCondition('restore-test-failing')).toBe('restore-test');
    expect(pagerCondition('stale')).toBe('stale');
  });
});
