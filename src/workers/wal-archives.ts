import { join } from 'node:path';
import type { Redis } from 'ioredis';
import type { Config, TargetConfig } from '../config.ts';
import { findAgeEngine } from '../crypto/age-cli.ts';
import { rpoCondition } from '../health/index.ts';
import type { Logger } from '../logger.ts';
import { startWalArchive, type WalArchiveState } from '../postgres/pitr/wal-archive.ts';
import { LocalWalStore } from '../postgres/pitr/wal-store.ts';
import { PartialWalStore } from '../postgres/pitr/partial-store.ts';
import { type RpoState, startRpoMonitor } from '../postgres/pitr/rpo-monitor.ts';
import { findPgProgram, findPgTools, findZstd } from '../postgres/tools.ts';
import { type StoredWalState, walStateKey } from '../jobs/wal-state.ts';

/**
 * The WAL archives of the targets that have a `pitr` section, started by a worker. Their state goes to Redis
 * (`<prefix>:wal:<target>`), where `/backup status` reads it in the bot's process.
 *
 * Not yet: a lease, so exactly one worker host receives each target's WAL. Until then a second worker's
 * pg_receivewal finds the slot in use ("replication slot … is active"), stays down and retries with its backoff:
 * the slot itself keeps it to one receiver, and the state each writes says which one is up. Local storage only
 * (BACKUP_DIR) in this version: with S3 as the primary store the archive is not started, and the state says so.
 */
export interface WalArchives {
  stop(): Promise<void>;
}

async function writeState(redis: Redis, key: string, s: StoredWalState, log: Logger): Promise<void> {
  await redis
    .multi()
    .del(key)
    .hset(key, Object.fromEntries(Object.entries(s).filter(([, v]) => v !== undefined)) as Record<string, string>)
    .exec()
    .catch((err: unknown) => log.debug({ err }, 'WAL state not written'));
}

/** What goes to Redis: the archive's state and the measured RPO beside it. */
export const storedWalState = (s: WalArchiveState, r: RpoState | null): StoredWalState => ({
  receiver: s.receiver.up ? 'up' : 'down',
  since: s.receiver.since.toISOString(),
  ...((s.receiver.error ?? s.archiveError) ? { error: s.archiveError ?? s.receiver.error } : {}),
  ...(s.lastArchived ? { lastArchived: s.lastArchived.name, lastArchivedAt: s.lastArchived.at.toISOString() } : {}),
  ...(r ? storedRpo(r) : {}),
});

const storedRpo = (r: RpoState): Partial<StoredWalState> => ({
  rpoObjectiveSeconds: String(r.objectiveSeconds),
  ...(r.measuredAt ? { rpoMeasuredAt: r.measuredAt.toISOString() } : {}),
  ...(r.behindSince ? { rpoBehindSince: r.behindSince.toISOString() } : {}),
  ...(r.error ? { rpoError: r.error } : {}),
  ...(r.currentLsn ? { currentLsn: r.currentLsn } : {}),
  ...(r.archivedLsn ? { archivedLsn: r.archivedLsn } : {}),
  ...(r.flushedLsn ? { flushedLsn: r.flushedLsn } : {}),
  ...(r.partialError ? { partialError: r.partialError } : {}),
});

/**
 * `onRpoVerdict`: called when the RPO's verdict (the `rpo` condition) changes as the worker measures it, after the
 * state is in Redis, so the health check runs then rather than at its next interval (15 min by default): an
 * objective of a minute must not page a quarter of an hour late.
 */
export async function startWalArchives(o: { config: Config; redis: Redis; log: Logger; onRpoVerdict?: (target: string) => void }): Promise<WalArchives> {
  const targets = o.config.targets.filter((t): t is TargetConfig & { pitr: NonNullable<TargetConfig['pitr']> } => t.pitr !== undefined);
  if (targets.length === 0) return { stop: async () => undefined };
  const prefix = o.config.queuePrefix;
  if (o.config.s3?.mode === 'primary') {
    for (const t of targets) {
      await writeState(
        o.redis,
        walStateKey(prefix, t.name),
        {
          receiver: 'not started',
          since: new Date().toISOString(),
          error: 'the WAL archive needs local storage (BACKUP_DIR) in this version; S3 as the primary store is not supported yet',
        },
        o.log,
      );
    }
    return { stop: async () => undefined };
  }
  const encrypted = o.config.encryption.recipients.length > 0;
  const [zstd, ageEngine] = await Promise.all([findZstd(), encrypted ? findAgeEngine() : Promise.resolve(undefined)]);
  const archives: Array<{ stop(): Promise<void> }> = [];
  // Found once for every target: the same pg_receivewal streams each of them.
  const tools = await findPgTools({ serverMajor: 10, ...(o.config.pgBinDir ? { pgBinDir: o.config.pgBinDir } : {}) });
  const pgReceivewal = await findPgProgram('pg_receivewal', tools.pgDump, tools.major);
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
    // Both write the one state hash: each with the other's latest part.
    let rpo: RpoState | null = null;
    let walState: WalArchiveState | null = null;
    let verdict: string | null = null;
    const write = () => {
      if (!walState) return;
      const state = storedWalState(walState, rpo);
      const now = rpo ? rpoCondition(t.name, new Date(), state).status : verdict;
      void writeState(o.redis, key, state, log).then(() => {
        if (now === verdict) return;
        verdict = now;
        o.onRpoVerdict?.(t.name);
      });
    };
    const archive = startWalArchive({
      ...common,
      target: t.name,
      pgReceivewal,
      replicationUrl: t.pitr.url,
      slot: t.pitr.slot,
      spool,
      onState: (s) => {
        walState = s;
        write();
      },
    });
    walState = archive.state();
    const monitor = startRpoMonitor({
      ...common,
      target: t.name,
      url: t.url,
      slot: t.pitr.slot,
      spool,
      partials: new PartialWalStore(o.config.backupDir, t.name),
      objectiveSeconds: t.pitr.rpoSeconds,
      newestArchived: () => archive.state().lastArchived?.name ?? null,
      receiverUp: () => archive.state().receiver.up,
      onState: (r) => {
        rpo = r;
        walState = archive.state();
        write();
      },
    });
    archives.push({ stop: async () => void (await Promise.all([monitor.stop(), archive.stop()])) });
  }
  return {
    async stop() {
      await Promise.all(archives.map((a) => a.stop()));
    },
  };
}
