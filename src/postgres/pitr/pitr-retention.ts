import type { Config } from '../../config-types.ts';
import { toUserMessage } from '../../errors.ts';
import type { Logger } from '../../logger.ts';
import { forgetPitrReader, pitrReaders } from './pitr-readers.ts';
import { pitrArchiveOps } from './pitr-retention-ops.ts';
import { type PitrRetentionPlan, planPitrRetention } from './pitr-retention-plan.ts';
import { segmentOf, segmentPosition } from './window.ts';

/**
 * PITR retention's executor, for every target with a `pitr` section (BACKUP_DIR, or the bucket with S3 as the primary
 * store: pitr-retention-ops.ts): plans each target on what is in its `_base/` and `_wal/` now
 * (pitr-retention-plan.ts), then deletes — base backups first (their base.json,
 * then the tar), oldest first, each only if no restore started reading it since the plan; then the WAL before the
 * oldest base backup still there (each index entry, then its file: a segment is archived exactly while its entry
 * exists). Bases before WAL: a run that stops half way leaves WAL nothing needs, never a base backup without its WAL.
 */
export interface PitrOutcome {
  target: string;
  what: 'base backup' | 'WAL';
  /** The base backup's id, or for WAL "<first> … <last>". */
  name: string;
  files: number;
  bytes: number;
  reason: string;
  /** null: deleted. */
  error: string | null;
}

export interface PitrTargetRetention {
  target: string;
  /** null when its base backups or WAL could not be read (error says why): nothing was deleted. */
  plan: PitrRetentionPlan | null;
  error: string | null;
  deleted: { bases: number; baseBytes: number; wal: number; walBytes: number };
  /** Deletions that failed, as sentences. */
  failures: string[];
  /** Base backups the plan would delete, kept because a restore started reading them during the run. */
  keptLate: string[];
}

export interface PitrRetentionRun {
  dryRun: boolean;
  targets: PitrTargetRetention[];
}

const isSegment = (name: string) => /^[0-9A-F]{24}/.test(name);

/** The targets PITR retention looks at: those with a `pitr` section, wherever the archive is (pitr-retention-ops.ts). */
export function pitrRetentionTargets(config: {
  targets: ReadonlyArray<{ name: string; pitr?: { walRetentionDays: number } | undefined }>;
}): Array<{ name: string; walRetentionDays: number }> {
  return config.targets.flatMap((t) => (t.pitr ? [{ name: t.name, walRetentionDays: t.pitr.walRetentionDays }] : []));
}

/** The audit line of one PITR deletion, in the shape of the logical backups' lines. */
export function pitrAuditResult(out: PitrOutcome): string {
  const what = `${out.files} file(s), ${out.bytes} bytes`;
  return out.error === null ? `deleted ${out.what} (${what}): ${out.reason}` : `delete of ${out.what} failed: ${out.error}`;
}

export async function runPitrRetention(o: {
  root: string;
  targets: ReadonlyArray<{ name: string; walRetentionDays: number }>;
  dryRun: boolean;
  log: Logger;
  now?: () => Date;
  /** After each deletion tried (the audit trail): one per base backup, one per target's WAL. Failures logged. */
  onOutcome?: (o: PitrOutcome) => Promise<void>;
  /**
   * The config's S3 section: as a copy (S3_MODE=copy), what is deleted on disk is deleted from the copy too; as the
   * primary store, the archive planned and deleted is the bucket's (pitr-retention-ops.ts). Holds stay in `root`.
   */
  offsite?: Pick<Config, 's3'>;
}): Promise<PitrRetentionRun> {
  const now = o.now ?? (() => new Date());
  const run: PitrRetentionRun = { dryRun: o.dryRun, targets: [] };
  const clients: Array<{ close(): void }> = [];
  for (const t of o.targets) {
    const log = o.log.child({ target: t.name, component: 'pitr-retention' });
    const result: PitrTargetRetention = {
      target: t.name,
      plan: null,
      error: null,
      deleted: { bases: 0, baseBytes: 0, wal: 0, walBytes: 0 },
      failures: [],
      keptLate: [],
    };
    run.targets.push(result);
    const archive = pitrArchiveOps({
      root: o.root,
      target: t.name,
      dryRun: o.dryRun,
      s3: o.offsite,
      log,
      onCopyFailure: (sentence) => result.failures.push(sentence),
    });
    clients.push(archive);
    try {
      // The partial snapshots only extend the window the report shows: failing to read them deletes nothing less.
      let partialsUnread: string | null = null;
      const partialsRead = archive.partials().catch((err: unknown) => {
        log.warn({ err }, 'PITR retention could not read the partial snapshots');
        partialsUnread = toUserMessage(err);
        return [];
      });
      const [{ bases, wal, unusable }, partials, readers] = await Promise.all([archive.list(), partialsRead, pitrReaders(o.root, t.name, now())]);
      result.plan = planPitrRetention({
        target: t.name,
        bases,
        wal,
        ...(unusable ? { unusable } : {}),
        partials,
        now: now(),
        retentionDays: t.walRetentionDays,
        reserved: new Set(readers.active.map((r) => r.baseId)),
      });
      if (partialsUnread)
        result.plan.note = [
          result.plan.note,
          `the partial segment's snapshots could not be read (${partialsUnread}): the window is shown to the newest whole segment`,
        ]
          .filter(Boolean)
          .join('; ');
      if (o.dryRun) continue;
      for (const r of readers.expired) await forgetPitrReader(o.root, t.name, r.token).catch(() => undefined);
    } catch (err) {
      log.error({ err }, 'PITR retention could not read the archive');
      result.error = toUserMessage(err);
      continue;
    }
    const say = async (out: PitrOutcome) => {
      if (out.error) result.failures.push(`could NOT delete ${out.what} ${out.name}: ${out.error}`);
      await o.onOutcome?.(out).catch((err: unknown) => log.error({ err }, 'could not record the deletion'));
    };
    for (const d of result.plan.deleteBases) {
      // Asked again right before: a restore that started since the plan wins, and its WAL stays with it.
      const reading = await pitrReaders(o.root, t.name, now()).catch(() => null);
      if (reading === null || reading.active.some((r) => r.baseId === d.base.id)) {
        result.keptLate.push(d.base.id);
        continue;
      }
      const out: PitrOutcome = { target: t.name, what: 'base backup', name: d.base.id, files: 1, bytes: d.base.bytes, reason: d.reason, error: null };
      try {
        await archive.deleteBase(d.base);
        result.deleted.bases++;
        result.deleted.baseBytes += d.base.bytes;
        log.info({ baseId: d.base.id, reason: d.reason }, 'retention deleted a base backup');
      } catch (err) {
        out.error = toUserMessage(err);
        log.error({ err, baseId: d.base.id }, 'retention could not delete a base backup');
      }
      await say(out);
    }
    // WAL only before the oldest base backup that is still there now (a base kept late keeps its WAL too).
    const remaining = await archive.bases().catch(() => null);
    const oldest = remaining?.[0];
    if (!oldest) {
      if (result.plan.deleteWal.length) result.failures.push('WAL not deleted: the base backups could not be listed again before it');
      continue;
    }
    const start = segmentPosition(segmentOf(oldest.startLsn, oldest.timeline));
    const doomed = result.plan.deleteWal.filter((e) => {
      if (!isSegment(e.name)) return Number.parseInt(e.name.slice(0, 8), 16) < start.timeline;
      const p = segmentPosition(e.name.slice(0, 24));
      return p.timeline <= start.timeline && p.n < start.n;
    });
    if (doomed.length === 0) continue;
    let bytes = 0;
    let files = 0;
    const errors: string[] = [];
    for (const e of doomed) {
      try {
        await archive.deleteWal(e);
        files++;
        bytes += e.bytes;
      } catch (err) {
        errors.push(`${e.name}: ${toUserMessage(err)}`);
        log.error({ err, wal: e.name }, 'retention could not delete a WAL file');
      }
    }
    result.deleted.wal += files;
    result.deleted.walBytes += bytes;
    log.info({ files, bytes, from: doomed[0]?.name, to: doomed.at(-1)?.name }, 'retention deleted WAL');
    await say({
      target: t.name,
      what: 'WAL',
      name: `${doomed[0]?.name} … ${doomed.at(-1)?.name}`,
      files,
      bytes,
      reason: `before ${result.plan.walFrom}, where the oldest kept base backup starts`,
      error: errors.length ? `${errors.length} file(s): ${errors.slice(0, 3).join('; ')}` : null,
    });
  }
  for (const c of clients) c.close();
  return run;
}
