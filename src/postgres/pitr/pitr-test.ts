import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { AgeIdentity } from '../../crypto/age.ts';
import { freePort } from '../../dev/ephemeral.ts';
import { BotError } from '../../errors.ts';
import type { Logger } from '../../logger.ts';
import { parsePgUrl } from '../connection.ts';
import type { BaseBackup } from './base-backup.ts';
import { checkMarkers, type CheckResult } from './markers.ts';
import { reservePitrBase } from './pitr-readers.ts';
import { chooseRecovery, layOutRecovery, listBaseBackups, parseRecoveryTime } from './pitr-restore.ts';
import { fetchOffsite, runScratchChecks, startAndReplay } from './pitr-test-steps.ts';
import { parseLsn } from './lsn.ts';
import { clusterMajor, configureScratch, makeScratchDir, pgCtl, serverBinDir, withScratchClient } from './scratch-cluster.ts';
import { remoteWindowWal } from './s3-archive.ts';
import type { S3PitrStore } from './s3-pitr-store.ts';
import { fetchWalForTest, newestCommit, walCheck } from './test-wal.ts';
import { LocalWalStore } from './wal-store.ts';
import { PartialWalStore, recoverableWal } from './partial-store.ts';
import { setAsideBases } from './wal-index.ts';
import { recoverableWindow, setAsideNamed, WAL_ARRIVES } from './window.ts';
import { gapBeforeWindow } from './switched.ts';

export type { CheckResult } from './markers.ts';

export interface PitrTestOptions {
  target: string;
  root: string;
  /** `latest`, `random` (a moment of the window, as the first-Saturday test asks), or a time with its offset. */
  asked: string;
  identity: AgeIdentity | undefined;
  /** The target's own connection: the database to check markers in, read on the source too. */
  sourceUrl: string;
  /** Markers are written for this target (pitr.markers): without them the exact-point check is said not run. */
  markers: boolean;
  /** How often (pitr.markers.everySeconds, in ms): a longer silence before the target is said unproven. */
  markerEveryMs?: number;
  heapallindexed: boolean;
  label: string;
  log: Logger;
  signal?: AbortSignal | undefined;
  onPhase?: (phase: string) => void;
  random?: () => number;
  replayTimeoutMs?: number;
  /** The archive's copy in S3 (S3_MODE=copy): the test recovers from it, as a new server would after losing the worker's disk. */
  offsite?: S3PitrStore | null;
  /** `offsite` is the archive itself (S3_MODE=primary): the test is planned on what the bucket holds, too. */
  primary?: boolean;
}

export interface PitrTestOutcome {
  target: string;
  asked: string;
  at: string | null;
  baseId: string | null;
  passed: boolean;
  checks: CheckResult[];
  /** RTO by phase: fetch (base backup and WAL), replay (server start to promotion), checks. */
  phasesMs: { fetch: number; replay: number; checks: number };
  rtoMs: number;
  wal: { segments: number; bytes: number };
  scratchRemoved: boolean;
}

/**
 * The moment to recover to, and the base backup to start from. A time without an offset, or outside the
 * window, is refused with the window named (BotError bad_request), before anything is fetched.
 */
export async function planPitrTest(
  root: string,
  target: string,
  asked: string,
  random = Math.random,
  /** S3 as the primary store: the bucket's archive, not BACKUP_DIR (the worker's spool). */
  remote?: S3PitrStore | null,
): Promise<{ at: Date; base: BaseBackup; timeline: number; explicit: boolean }> {
  // The window as `/backup list` and restore-pitr have it: whole segments and the snapshot being written (replayed too).
  const { bases, wal } = remote ? await remoteWindowWal(remote) : { bases: await listBaseBackups(root, target), wal: await recoverableWal(root, target) };
  const w = recoverableWindow(bases, wal);
  const setAside = remote ? [] : await setAsideBases(root, target);
  const none = setAside.length ? `good base backup (${setAsideNamed(setAside)} set aside as damaged by the checksum scrub)` : 'base backup yet';
  const why = bases.length
    ? `WAL archived yet that reaches past its base backup: nothing can be recovered to a point in time; the window opens once WAL the server writes after it is archived: ${WAL_ARRIVES}.`
    : `${none}: take one with \`pg-backup-bot base-backup ${target}\`, then test.`;
  if (!w) throw new BotError('backup_not_found', gapBeforeWindow(target, bases, wal) ?? `${target} has no ${why}`);
  const explicit = asked !== 'latest' && asked !== 'random';
  const at = explicit ? parseRecoveryTime(asked) : asked === 'latest' ? w.to : new Date(w.from.getTime() + random() * (w.to.getTime() - w.from.getTime()));
  return { at, ...chooseRecovery(bases, wal, at, setAside), explicit };
}

const sh = (v: string) => `'${v.replace(/'/g, `'\\''`)}'`;
const pgTime = (d: Date) => d.toISOString().replace('T', ' ').replace('Z', '+00');

/**
 * A PITR restore test into a scratch cluster: the base backup laid out and the WAL fetched (phase fetch), the server
 * started to replay to the moment and promote (phase replay), then pg_verifybackup's verdict on the base backup
 * (run before the start, timed with the checks), how recovery ended in the server's own log, pg_amcheck on every
 * database, and the exact-point check with markers (phase checks). The scratch cluster is stopped and removed on
 * every path, also when the job is cancelled.
 */
export async function runPitrTest(o: PitrTestOptions): Promise<PitrTestOutcome> {
  const remote = o.primary ? o.offsite : null;
  const plan = await planPitrTest(o.root, o.target, o.asked, o.random, remote);
  let at = plan.at;
  // The base backup recovered from: the plan's, or the one the off-site copy holds for that moment.
  let base = plan.base;
  const checks: CheckResult[] = [];
  const phasesMs = { fetch: 0, replay: 0, checks: 0 };
  const outcome = (): PitrTestOutcome => ({
    target: o.target,
    asked: o.asked,
    at: at.toISOString(),
    baseId: base.id,
    passed: checks.length > 0 && checks.every((c) => c.ok !== false) && !checks.some((c) => c.ok === null && c.name !== 'exact point (markers)'),
    checks,
    phasesMs,
    rtoMs: phasesMs.fetch + phasesMs.replay + phasesMs.checks,
    wal: { segments: 0, bytes: 0 },
    scratchRemoved: false,
  });
  // Retention leaves the base backup and the WAL after it alone while this test reads them (pitr-readers.ts).
  const hold = await reservePitrBase(o.root, o.target, plan.base.id, { reader: `PITR restore test ${o.label}` });
  if (!(await (remote ? remote.listBases() : listBaseBackups(o.root, o.target))).some((b) => b.id === plan.base.id)) {
    await hold.release();
    throw new BotError('backup_not_found', `Base backup ${plan.base.id} was deleted by retention as the test began: run the test again.`);
  }
  const s = await makeScratchDir(o.label).catch(async (err: unknown) => {
    await hold.release();
    throw err;
  });
  let binDir: string | null = null;
  let result: PitrTestOutcome | undefined;
  try {
    let t = Date.now();
    // From S3, what a new server would get: the base backup and WAL fetched from the copy into the scratch dir.
    const from = o.offsite
      ? await fetchOffsite(o.offsite, join(s.dir, 'offsite-archive'), at, checks, !!remote, plan.base.id, o.signal)
      : { root: o.root, base: plan.base };
    if (!from) {
      result = outcome();
      return result;
    }
    base = from.base;
    o.onPhase?.(`fetching base backup ${base.id}`);
    await layOutRecovery({
      root: from.root,
      base,
      dataDir: s.dataDir,
      identity: o.identity,
      at,
      timeline: plan.timeline,
      action: 'promote',
      restoreCommand: `cp ${sh(s.walDir)}/%f "%p"`,
    });
    o.onPhase?.('fetching WAL');
    await mkdir(s.walDir, { mode: 0o700 });
    const wal = await fetchWalForTest({
      store: new LocalWalStore(from.root, o.target),
      partials: new PartialWalStore(from.root, o.target),
      base,
      timeline: plan.timeline,
      walDir: s.walDir,
      identity: o.identity,
      signal: o.signal,
    });
    phasesMs.fetch = Date.now() - t;
    const walInfo = { segments: wal.segments.length, bytes: wal.bytes };
    checks.push(walCheck(wal, base, plan.timeline));
    if (wal.gap) {
      result = { ...outcome(), wal: walInfo };
      return result;
    }
    binDir = await serverBinDir(await clusterMajor(s.dataDir));
    const newestCommitted = await newestCommit(join(binDir, 'pg_waldump'), s.walDir, wal.segments);
    const conf = join(s.dataDir, 'postgresql.auto.conf');
    if (plan.explicit && newestCommitted && newestCommitted.usec <= at.getTime() * 1000) {
      // No commit follows the time asked (to the microsecond): PostgreSQL would never stop "at" it. The newest commit
      // holds what the database held then, as restore-pitr does it (last-commit.ts).
      // A newest commit before the base backup's end (nothing committed after it): its consistent point is that state.
      const afterBase = parseLsn(newestCommitted.lsn) >= parseLsn(base.endLsn);
      const text = await readFile(conf, 'utf8');
      await writeFile(
        conf,
        text.replace(/^recovery_target_time = .*$/m, afterBase ? `recovery_target_lsn = '${newestCommitted.lsn}'` : "recovery_target = 'immediate'"),
      );
    }
    if (!plan.explicit) {
      const newest = newestCommitted?.at;
      const floor = Date.parse(base.finishedAt);
      if (!newest || newest.getTime() <= floor) {
        checks.push({
          name: 'recovery target',
          ok: false,
          detail: `no transaction committed after base backup ${base.id} ended: there is no later moment to recover to`,
        });
        result = { ...outcome(), wal: walInfo };
        return result;
      }
      const ceiling = Math.floor(newest.getTime()) - 1;
      // Recovery stops at the first commit after the target: `latest` is just before the newest commit archived.
      if (o.asked === 'latest' || at.getTime() > ceiling)
        at = new Date(o.asked === 'latest' ? ceiling : floor + (o.random ?? Math.random)() * (ceiling - floor));
      const text = await readFile(conf, 'utf8');
      await writeFile(conf, text.replace(/^recovery_target_time = .*$/m, `recovery_target_time = '${pgTime(at)}'`));
    }
    t = Date.now();
    o.onPhase?.('verifying the base backup (pg_verifybackup)');
    const verify = await runScratchChecks.verifyBackup(binDir, s, o.signal);
    checks.push(verify);
    phasesMs.checks += Date.now() - t;
    const port = await freePort();
    await configureScratch(s, port);
    o.onPhase?.(`replaying WAL to ${at.toISOString()}`);
    t = Date.now();
    const users = [...new Set(['postgres', parsePgUrl(o.sourceUrl).env.PGUSER].filter((u): u is string => !!u))];
    const database = parsePgUrl(o.sourceUrl).env.PGDATABASE ?? 'postgres';
    const replay = await startAndReplay({ s, binDir, port, users, database, timeoutMs: o.replayTimeoutMs ?? 6 * 3600_000, signal: o.signal });
    phasesMs.replay = Date.now() - t;
    checks.push(replay.check);
    if (!replay.user) {
      result = { ...outcome(), wal: walInfo };
      return result;
    }
    t = Date.now();
    o.onPhase?.('checking the recovered cluster (pg_amcheck, markers)');
    checks.push(await runScratchChecks.amcheck(binDir, s, port, replay.user, o.heapallindexed, o.signal));
    const user = replay.user;
    checks.push(
      o.markers
        ? await checkMarkers({
            sourceUrl: o.sourceUrl,
            restored: (fn) => withScratchClient(s, port, user, database, fn),
            at,
            since: new Date(0),
            ...(o.markerEveryMs ? { everyMs: o.markerEveryMs } : {}),
          })
        : { name: 'exact point (markers)', ok: null, detail: 'not run: markers are off for this target (pitr.markers: false)' },
    );
    phasesMs.checks += Date.now() - t;
    result = { ...outcome(), wal: walInfo };
    return result;
  } finally {
    await hold.release();
    if (binDir) await pgCtl(s, binDir, ['-D', s.dataDir, '-m', 'immediate', '-w', 'stop']);
    await s.remove();
    if (result) result.scratchRemoved = true;
  }
}
