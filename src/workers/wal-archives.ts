import { join } from 'node:path';
import type { RedisConnection } from '../redis-client.ts';
import type { Config, TargetConfig } from '../config.ts';
import { findAgeEngine } from '../crypto/age-cli.ts';
import { rpoCondition } from '../health/index.ts';
import type { Logger } from '../logger.ts';
import { parseLsn, segmentPosition } from '../postgres/pitr/lsn.ts';
import { startWalArchive, type WalArchiveState } from '../postgres/pitr/wal-archive.ts';
import { receiverBackoff } from '../postgres/pitr/receiver.ts';
import { LocalWalStore } from '../postgres/pitr/wal-store.ts';
import { recordInBackground } from '../postgres/pitr/history-record.ts';
import { PartialWalStore } from '../postgres/pitr/partial-store.ts';
import { type RpoState, startRpoMonitor } from '../postgres/pitr/rpo-monitor.ts';
import { RpoTracker } from '../postgres/pitr/rpo.ts';
import { segmentReach } from '../postgres/pitr/segment-time.ts';
import { findPgProgram, findPgTools, findZstd } from '../postgres/tools.ts';
import { readWalState, type StoredWalState, walStateKey } from '../jobs/wal-state.ts';
import { type LeaseTiming, leaseToken, walLeaseKey } from '../jobs/wal-lease.ts';
import { leasedArchive } from './leased-archive.ts';
import { inheritedRpo, previousSamples, storedWalState, writeState } from './wal-state-write.ts';
import { type OffsiteState, startOffsiteMirror } from './offsite-loop.ts';
import { newestInBucket, s3PitrStore } from '../postgres/pitr/s3-pitr-store.ts';
import { pitrInS3 } from '../postgres/pitr/pitr-location.ts';
import { storageMarkProblem } from '../storage/storage-mark.ts';
import type { Storage } from '../storage/types.ts';

/**
 * The WAL archives of the targets that have a `pitr` section, started by a worker. Their state goes to Redis
 * (`<prefix>:wal:<target>`), where `/backup status` reads it in the bot's process.
 *
 * Exactly one worker, on any host, receives a target's WAL: the one holding its WAL lease in Redis
 * (`<prefix>:wal-lease:<target>`, jobs/wal-lease.ts, run by leased-archive.ts). The others wait and take over
 * when the holder stops (it releases the lease) or dies (the lease expires). The state says which host holds it.
 * The spool is under BACKUP_DIR, which every worker host shares, so a new holder resumes from the same partial
 * segment. With S3 as the primary store (S3_MODE=primary) that directory is a spool: the same worker uploads what
 * is archived there and removes it once the bucket holds it (offsite-loop.ts), and the state's `lastArchived` and the
 * RPO count only what the bucket holds.
 */
export interface WalArchives {
  stop(): Promise<void>;
}

export { storedWalState };

export async function startWalArchives(o: {
  config: Config;
  redis: RedisConnection;
  log: Logger;
  /** The lease's TTL, renewal and retry (jobs/wal-lease.ts DEFAULT_LEASE: 30 s, 10 s, 5 s); tests shorten them. */
  lease?: Partial<LeaseTiming>;
  /**
   * Called, after the state is in Redis, when the RPO's verdict changes as the worker measures it (an objective of a
   * minute must not page at the next health run, 15 min away), and when the first whole segment of a newer timeline
   * is archived (a promotion: wal-gap, and the base backup it starts, workers/base-backup-after-break.ts).
   */
  recheck?: (target: string) => void;
  /** How often the archive is copied (S3_MODE=copy) or the spool uploaded (S3_MODE=primary) to S3 (offsite-loop.ts): default every 10 s. */
  offsiteEveryMs?: number;
  /**
   * The backups' storage: where it is a local BACKUP_DIR, WAL is received and archived there only while it is the bot's
   * storage (storage-mark.ts: a disk not mounted leaves its mount point, where the archive would go on beneath it).
   */
  storage?: Pick<Storage, 'root' | 'describe'>;
  /** How often a running receiver asks that again (receiver.ts `guardEveryMs`, default 30 s); tests shorten it. */
  guardEveryMs?: number;
}): Promise<WalArchives> {
  const targets = o.config.targets.filter((t): t is TargetConfig & { pitr: NonNullable<TargetConfig['pitr']> } => t.pitr !== undefined);
  if (targets.length === 0) return { stop: async () => undefined };
  const prefix = o.config.queuePrefix;
  const storage = o.storage;
  const encrypted = o.config.encryption.recipients.length > 0;
  const [zstd, ageEngine] = await Promise.all([findZstd(), encrypted ? findAgeEngine() : Promise.resolve(undefined)]);
  const archives: Array<{ stop(): Promise<void> }> = [];
  const { token, holder } = leaseToken();
  // Found once for every target: the same pg_receivewal streams each of them.
  const tools = await findPgTools({ serverMajor: 10, ...(o.config.pgBinDir ? { pgBinDir: o.config.pgBinDir } : {}) });
  const pgReceivewal = await findPgProgram('pg_receivewal', tools.pgDump, tools.major);
  // Reads a backlog's segments for the time they reach (segment-time.ts); of the client tools' major, which the
  // server shares as a rule (another major's WAL it cannot read: the segment before's time is used then).
  const pgWaldump = await findPgProgram('pg_waldump', tools.pgDump, tools.major);
  for (const t of targets) {
    const log = o.log.child({ target: t.name, component: 'wal' });
    const key = walStateKey(prefix, t.name);
    if (!pgReceivewal) {
      await writeState(
        o.redis,
        key,
        { receiver: 'not started', since: new Date().toISOString(), error: `pg_receivewal is not installed (postgresql-client-${tools.major})` },
        log,
      );
      continue;
    }
    const common = {
      store: new LocalWalStore(o.config.backupDir, t.name),
      zstd,
      level: o.config.compressionLevel,
      recipients: o.config.encryption.recipients,
      ageEngine,
      log,
    };
    const spool = join(o.config.backupDir, '_wal-spool', t.name);
    const objective = t.pitr.rpoSeconds;
    // The archive and the RPO monitor write the one state hash, each with the other's latest part.
    let rpo: RpoState | null = null;
    let offsite: OffsiteState = {};
    let verdict: string | null = null;
    const inS3 = pitrInS3(o.config);
    // S3_MODE=primary: archived means in the bucket, so the newest segment there is the archive's newest.
    // The previous holder's measurement, kept in the state until this one has its own (second reader: the first write
    // erased it, and health read "not measured yet" as passing, resolving an open RPO page).
    let inherited: Partial<StoredWalState> = {};
    const stored = (s: WalArchiveState): StoredWalState => {
      const { newestSeenAt, partialEnd: _inBucket, ...rest } = offsite;
      const base = { ...(rpo?.measuredAt ? {} : inherited), ...storedWalState(s, holder, rpo, objective), ...rest };
      if (!inS3) return base;
      const { lastArchived: _spooled, lastArchivedAt: _at, ...others } = base;
      return { ...others, ...(rest.offsiteNewest ? { lastArchived: rest.offsiteNewest, lastArchivedAt: newestSeenAt ?? new Date().toISOString() } : {}) };
    };
    let timeline: number | null = null;
    const write = (s: WalArchiveState) => {
      const state = stored(s);
      const now = rpo ? rpoCondition(t.name, new Date(), state).status : verdict;
      const archivedOn = s.lastArchived ? segmentPosition(s.lastArchived.name).timeline : null;
      const moved = archivedOn !== null && timeline !== null && archivedOn > timeline;
      if (archivedOn !== null) timeline = archivedOn;
      void writeState(o.redis, key, state, log).then(() => {
        if (moved) o.recheck?.(t.name);
        if (now === verdict) return;
        verdict = now;
        o.recheck?.(t.name);
      });
    };
    // While this worker holds the lease: the archive, and beside it the RPO monitor (its partial snapshots need the
    // spool this worker's receiver writes).
    const start = () => {
      // The previous holder's state, read before this one writes any: the RPO counts on from its measurement.
      const previous = readWalState(o.redis, prefix, t.name).then((s) => {
        inherited = inheritedRpo(s);
        return previousSamples(s, new Date(), t.pitr.walRetentionDays * 86_400_000);
      });
      previous.catch(() => undefined); // said by the monitor, which awaits it
      const remote = s3PitrStore(o.config, t.name, { log });
      // The RPO monitor's samples of the server's position also stamp each archived segment with the time it reaches.
      const tracker = new RpoTracker();
      // The segment before's entry: S3_MODE=primary removes the local one once it is in the bucket.
      const entry = async (n: string) => (await common.store.entry(n)) ?? (inS3 && remote ? await remote.walEntry(n) : null);
      // A live segment takes one more sample as it is archived (the monitor's): idle at its end, or moved on.
      let sampleNow: (() => Promise<void>) | undefined;
      const reachedAt = segmentReach({ tracker, pgWaldump, entry, sampleNow: async () => sampleNow?.() });
      const archive = startWalArchive({
        ...common,
        target: t.name,
        pgReceivewal,
        replicationUrl: t.pitr.url,
        slot: t.pitr.slot,
        spool,
        reachedAt,
        keepLeftoversMs: t.pitr.walRetentionDays * 86_400_000,
        backoff: receiverBackoff(objective),
        ...(storage ? { precondition: () => storageMarkProblem(storage, o.redis, prefix) } : {}),
        ...(o.guardEveryMs !== undefined ? { guardEveryMs: o.guardEveryMs } : {}),
        onState: write,
      });
      recordInBackground(common.store, t.pitr.url, log); // history files archived before their record was kept
      const monitor = startRpoMonitor({
        ...common,
        target: t.name,
        url: t.url,
        slot: t.pitr.slot,
        spool,
        partials: new PartialWalStore(o.config.backupDir, t.name),
        objectiveSeconds: objective,
        newestArchived: () => (inS3 ? (offsite.offsiteNewest ?? null) : (archive.state().lastArchived?.name ?? null)),
        archivedWhole: async (n) => (await entry(n)) !== null,
        previous: () => previous,
        ...(inS3 && remote ? { inS3: { newestAtStart: () => newestInBucket(remote), partialEnd: () => parseLsn(offsite.partialEnd ?? '0/0') } } : {}),
        receiverUp: () => archive.state().receiver.up,
        tracker,
        onState: (r) => {
          rpo = r;
          write(archive.state());
        },
      });
      // Not once it stops: a tick after stop() would open its connection again, and nothing would close it.
      sampleNow = () => monitor.sample();
      // The copy to S3 (S3_MODE=copy), or the spool's upload (S3_MODE=primary), beside them by the same one worker.
      const copier = remote
        ? startOffsiteMirror({
            root: o.config.backupDir,
            local: common.store,
            remote,
            everyMs: o.offsiteEveryMs ?? 10_000,
            primary: inS3,
            log,
            onState: (s) => {
              offsite = s;
              write(archive.state());
            },
          })
        : null;
      return {
        ...archive,
        async stop(opts?: Parameters<typeof archive.stop>[0]) {
          sampleNow = undefined;
          await monitor.stop();
          await archive.stop(opts);
          await copier?.stop();
          remote?.client.destroy();
        },
      };
    };
    archives.push(
      leasedArchive({
        redis: o.redis,
        key: walLeaseKey(prefix, t.name),
        token,
        timing: o.lease,
        url: t.pitr.url,
        slot: t.pitr.slot,
        log,
        start,
        // Down from now until another worker takes the lease: the health condition's grace counts from here.
        onStopped: (last) =>
          writeState(
            o.redis,
            key,
            {
              ...stored(last),
              receiver: 'down',
              since: new Date().toISOString(),
              error: 'the worker receiving this WAL stopped (restart or shutdown); another worker takes the WAL lease within seconds, if one runs',
            },
            log,
          ),
      }),
    );
  }
  return {
    async stop() {
      await Promise.all(archives.map((a) => a.stop()));
    },
  };
}
