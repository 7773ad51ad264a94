import { describe, expect, it } from 'vitest';
import { backupDiskCondition, evaluateHealth, inputDiskNeed, resolveThresholds } from '../../src/health/index.ts';
import { HOUR, ago, healthyInput, pick } from './fixtures.ts';

/**
 * The disk every target writes to, judged once for all of them (health/disk-condition.ts backupDiskCondition): it
 * fails exactly when some target's own disk condition does, says which targets, and the targets' own conditions are
 * quiet, so a full disk under 20 targets is one page and one post, not 20 (workers/disk-health.ts).
 */

const GB = 1024 ** 3;
const MB = 1024 ** 2;
const t = resolveThresholds(undefined);
const WHERE = 'local:/var/backups/pgbb';
/** What the disk's condition says clears it, when room is what it lacks. */
const TODO = '; to clear it: free space, or delete old backups (`pg-backup-bot retention --dry-run` lists what retention deletes next)';
const full = {
  ok: false,
  at: ago(HOUR),
  reason: 'The backup disk is full (local:/var/backups/pgbb); free space or delete old backups, then run the backup again.',
  jobId: '9',
};

/** Targets whose newest backups are `sizesMb` (the fixture's eight daily backups, the newest scaled). */
function needs(disk: { totalBytes: number; freeBytes: number }, sizes: Record<string, number>, lastRuns: Record<string, typeof full> = {}) {
  return Object.entries(sizes).map(([target, mb]) => {
    const base = healthyInput({ target, disk });
    const newest = base.backups.reduce((a, b) => (Date.parse(b.startedAt) > Date.parse(a.startedAt) ? b : a));
    const scaled = base.backups.map((m) => (m === newest ? { ...m, artifacts: m.artifacts.map((a) => ({ ...a, bytes: (mb * MB) / m.artifacts.length })) } : m));
    return inputDiskNeed({ ...base, backups: scaled, ...(lastRuns[target] ? { lastBackupRun: lastRuns[target] } : {}) });
  });
}

describe('backupDiskCondition', () => {
  it('a nearly full disk under three targets: one failing condition for the disk, naming it once', () => {
    const disk = { totalBytes: 100 * GB, freeBytes: 5 * GB };
    const r = backupDiskCondition(WHERE, disk, t, needs(disk, { shop: 400, crm: 300, billing: 200 }));
    expect(r).toMatchObject({ condition: 'disk', status: 'failing', severity: 'warning', value: 0.05 });
    expect(r?.summary).toBe(`Backup disk ${WHERE} is nearly full: 5 % free (5.0 GB of 100 GB), limit 20 %${TODO}`);
    expect(r?.evidence).toBe(`5 % free (5.0 GB of 100 GB), limit 20 %; 3 targets write to it${TODO}`);
    expect(r?.quiet).toBeUndefined();
  });

  it('names the targets whose next backup does not fit, largest first, and says how much each needs', () => {
    const disk = { totalBytes: 2 * GB, freeBytes: 600 * MB };
    const one = backupDiskCondition(WHERE, disk, t, needs(disk, { shop: 500, crm: 100 }));
    expect(one?.status).toBe('failing');
    expect(one?.summary).toBe(
      `Backup disk ${WHERE} has too little room: 600 MB free, the next backup of shop needs about 625 MB (the newest backup (shop-20261124T090000Z) took 500 MB, plus 25 %)${TODO}`,
    );
    const many = backupDiskCondition(WHERE, disk, t, needs(disk, { a: 500, b: 700, c: 800, d: 900, e: 100 }));
    expect(many?.summary).toBe(
      `Backup disk ${WHERE} has too little room: 600 MB free, the next backups of d (about 1.1 GB), c (about 1000 MB), b (about 875 MB) and 1 more each need more than that${TODO}`,
    );
  });

  it('names the targets whose last backup ran out of space, until a backup of theirs succeeds', () => {
    const disk = { totalBytes: 100 * GB, freeBytes: 60 * GB };
    const r = backupDiskCondition(WHERE, disk, t, needs(disk, { shop: 400, crm: 300, billing: 200 }, { shop: full, crm: { ...full, at: ago(2 * HOUR) } }));
    expect(r?.summary).toBe(
      `Backup disk ${WHERE} is short of space: the last backups of shop and crm ran out of space (the latest at 2026-11-24 11:00 UTC) and none has succeeded since; to clear it: back up shop and crm again (\`/backup now <target>\`)`,
    );
    // No figure for the disk (a bucket): the runs still say it; else nothing is judged.
    expect(backupDiskCondition(WHERE, null, t, needs(disk, { shop: 400 }, { shop: full }))?.status).toBe('failing');
    expect(backupDiskCondition(WHERE, null, t, needs(disk, { shop: 400 }))).toMatchObject({ status: 'ok', unjudged: true });
  });

  it('is one episode while it fails, whatever fails for whom: free space moves with every backup and retention run', () => {
    const roomy = { totalBytes: 100 * GB, freeBytes: 60 * GB };
    const tuesday = { totalBytes: 100 * GB, freeBytes: 3 * GB };
    expect(backupDiskCondition(WHERE, roomy, t, needs(roomy, { archive: 400, shop: 300 }, { archive: full })).episode).toBeUndefined();
    expect(backupDiskCondition(WHERE, tuesday, t, needs(tuesday, { archive: 400, shop: 300 }, { archive: full })).episode).toBeUndefined();
  });

  it('fails when every target’s next backup fits alone but not all of them together (the nightly round)', () => {
    // 1.5 GB free: each next backup (500 MB + 25 %) fits, the three (about 1.8 GB) do not.
    const disk = { totalBytes: 5 * GB, freeBytes: 1.5 * GB };
    const r = backupDiskCondition(WHERE, disk, t, needs(disk, { shop: 500, crm: 500, billing: 450 }));
    expect(r.status).toBe('failing');
    expect(r.summary).toBe(
      `Backup disk ${WHERE} has too little room for every target's next backup: 1.5 GB free, the next backups of all 3 targets need about 1.8 GB in all (the largest: shop 625 MB, crm 625 MB and billing 563 MB)${TODO}`,
    );
    // Each target alone has room: its own line says so; the disk's own line (in /backup health while it fails) says this.
    for (const n of needs(disk, { shop: 500 })) expect(n.next?.bytes).toBe(500 * MB);
    expect(backupDiskCondition(WHERE, { totalBytes: 5 * GB, freeBytes: 2 * GB }, t, needs(disk, { shop: 500, crm: 500, billing: 450 })).status).toBe('ok');
  });

  it('for one target, has room when it has, and fails exactly when its own disk condition fails', () => {
    const roomy = { totalBytes: 100 * GB, freeBytes: 50 * GB };
    const ok = backupDiskCondition(WHERE, roomy, t, needs(roomy, { shop: 400, crm: 300 }));
    expect(ok).toMatchObject({ status: 'ok', summary: `Backup disk ${WHERE} has room: 50 % free (50.0 GB of 100 GB), limit 20 %` });
    for (const [disk, lastBackupRun] of [
      [{ totalBytes: 100 * GB, freeBytes: 19 * GB }, undefined],
      [{ totalBytes: 1500 * MB, freeBytes: 450 * MB }, undefined],
      [{ totalBytes: 100 * GB, freeBytes: 50 * GB }, full],
      [{ totalBytes: 100 * GB, freeBytes: 21 * GB }, undefined],
    ] as const) {
      const input = healthyInput({ disk, ...(lastBackupRun ? { lastBackupRun } : {}) });
      const own = pick(evaluateHealth(input), 'disk');
      const shared = backupDiskCondition(WHERE, disk, t, [inputDiskNeed(input)]);
      expect(shared?.status, own.summary).toBe(own.status);
      // The target's own condition, failing, is quiet: the disk's condition talks for it.
      expect(own.quiet).toBe(own.status === 'failing' ? true : undefined);
    }
  });
});
