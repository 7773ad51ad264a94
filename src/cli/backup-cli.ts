import { cliFailure } from './cli-failure.ts';
import { missingBackupDir } from './backup-dir.ts';
import { formatInZone } from '../schedules/time.ts';
import type { Config } from '../config.ts';
import { backupEncryption } from '../postgres/backup/backup-encryption.ts';
import { findTarget } from '../config.ts';
import { TargetName } from '../target-name.ts';
import { BotError, isBotError, toUserMessage } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { formatBytes, formatCount, formatDuration } from '../format.ts';
import { describeDumpProgress, dumpEstimate, runBackup } from '../postgres/backup/index.ts';
import { copyToAll, makeBackupId, totalBytes, totalRows } from '../storage/index.ts';
import { listWithTestVerdicts, retentionFor, strayBackups } from '../storage/index.ts';
import type { Storage } from '../storage/index.ts';
import { formatBackupList } from '../commands/replies.ts';
import type { CliBackupGate } from './backup-lock.ts';
import type { EndedBy } from '../jobs/replacement-marks.ts';

export interface CliIo {
  out: (line: string) => void;
  err: (line: string) => void;
  /** Whether stderr is a terminal: progress redraws one line there, and prints plain lines elsewhere. */
  tty: boolean;
}

/** `pg-backup-bot backup [target]`: the same backup as `/backup now`, in the foreground, for when Slack is down. */
export async function cliBackup(
  args: string[],
  deps: { config: Config; redisUrl: string | null; storage: Storage; copies?: Storage[]; log: Logger; io: CliIo; signal?: AbortSignal },
): Promise<number> {
  const { io } = deps;
  if (args.length > 1) {
    io.err('usage: pg-backup-bot backup [target]');
    return 2;
  }
  let release: () => Promise<void> = () => Promise.resolve();
  // With the bot's Redis (REDIS_URL), the run goes into its run log like a worker's: `check` and health see it.
  let record: (run: { ok: boolean; reason: string | null }) => Promise<void> = () => Promise.resolve();
  let endedBy: () => Promise<EndedBy | null> = () => Promise.resolve(null);
  try {
    const target = findTarget(deps.config, args[0]);
    // Refused before anything is said or locked (QA: "Backing up …" was printed, then the refusal).
    backupEncryption(target, deps.config.encryption);
    // The lock's module (ioredis, ~0.15 s to load) only where there is a Redis to ask.
    const lock = deps.redisUrl === null ? null : await import('./backup-lock.ts');
    const gate: CliBackupGate = lock ? await lock.cliBackupLock(deps.config, deps.redisUrl, target.name) : { kind: 'unguarded', why: null };
    if (gate.kind === 'busy') {
      io.err(`A backup of ${target.name} is already running: ${lock?.describeHolder(gate.holder)}. Nothing was started; run this again when it has ended.`);
      return 1;
    }
    if (gate.kind === 'held') ({ release, record, endedBy } = gate);
    const notOurs = gate.kind === 'held' ? await gate.notOurs(deps.storage) : null;
    if (notOurs) throw new BotError('storage_failed', notOurs);
    if (gate.kind === 'unguarded' && gate.why) io.err(`Note: ${gate.why}; this backup cannot tell whether the bot is backing up ${target.name} right now.`);
    const startedAt = new Date();
    const retention = retentionFor('manual', startedAt);
    const user = process.env.USER ?? process.env.LOGNAME;
    io.err(`Backing up ${target.name} to ${deps.storage.describe()} …`);
    let lastPrint = 0;
    let lastPhase = '';
    const estimate = await dumpEstimate(deps.storage, target.name);
    const manifest = await runBackup({
      target,
      storage: deps.storage,
      backupId: makeBackupId(target.name, startedAt),
      kind: 'manual',
      retentionClass: retention.retentionClass,
      retainUntil: retention.retainUntil,
      requestedBy: { source: 'cli', ...(user ? { userName: user } : {}) },
      jobId: null,
      label: null,
      compressionLevel: deps.config.compressionLevel,
      // Public keys only: the worker can encrypt but never decrypt. No keys: production refuses unless opted out.
      encryption: deps.config.encryption,
      ...(deps.config.pgBinDir ? { pgBinDir: deps.config.pgBinDir } : {}),
      ...(deps.signal ? { signal: deps.signal } : {}),
      log: deps.log,
      onProgress: (p) => {
        const now = Date.now();
        // Each phase said when it starts (the dump's first report with its total); the dump's reports once a second.
        if (p.phase === lastPhase && now - lastPrint < 1000) return;
        lastPrint = now;
        lastPhase = p.phase;
        const elapsed = now - startedAt.getTime();
        const how = p.waiting ?? (p.rawBytes !== undefined ? describeDumpProgress(p.rawBytes, elapsed, estimate, p.tablesBytes) : null);
        const line = `  ${p.phase}${how ? ` · ${how}` : ''} · ${formatDuration(elapsed)}`;
        if (io.tty) io.err(`\x1b[1A\x1b[2K${line}`);
        else io.err(line);
      },
    });
    const db = manifest.artifacts.find((a) => a.role === 'database');
    io.out(
      [
        `Backup ${manifest.backupId} OK`,
        `  size        ${formatBytes(totalBytes(manifest))} (database ${formatBytes(manifest.database.sizeBytes)}, zstd level ${db?.compressionLevel ?? '-'})`,
        `  duration    ${formatDuration(manifest.durationMs)}`,
        `  tables      ${formatCount(manifest.verification.tables.length)}, ${formatCount(totalRows(manifest))} rows`,
        `  sha256      ${db?.sha256 ?? '-'}`,
        `  encryption  ${db?.encryption ? `age, ${db.encryption.recipients.length} recipient${db.encryption.recipients.length === 1 ? '' : 's'}` : 'none'}`,
        // In the configured zone, as `list` shows it (QA: "15:01 UTC" here, "16:01 UTC+01:00" there).
        `  kept until  ${manifest.retainUntil ? formatInZone(new Date(manifest.retainUntil), deps.config.timezone) : 'deleted by hand'}`,
        `  globals     ${manifest.globals.included ? 'included' : 'skipped'}${manifest.globals.note ? ` (${manifest.globals.note})` : ''}`,
      ].join('\n'),
    );
    await record({ ok: true, reason: null }).catch((err: unknown) => deps.log.warn({ err }, 'could not record the run'));
    // S3_MODE=copy: the off-site copy a worker makes, made here too (QA: the CLI, the Slack-down path, never made it).
    const copies = deps.copies ?? [];
    if (copies.length === 0) return 0;
    const outcomes = await copyToAll(deps.storage, copies, manifest, { log: deps.log, ...(deps.signal ? { signal: deps.signal } : {}) });
    for (const o of outcomes) io.out(o.ok ? `  copied to   ${o.destination}` : `  NOT copied to ${o.destination}: ${o.error}`);
    return outcomes.every((o) => o.ok) ? 0 : 1;
  } catch (err) {
    // Its sessions ended by a replacement's swap: said as such, and not a failed run (health would page it).
    const ended = isBotError(err) && err.code === 'pg_unreachable' ? await endedBy() : null;
    if (ended) {
      io.err(
        `Backup ENDED: the replacement of ${ended.database} (restore job ${ended.restoreJobId}) swapped the databases and ended its sessions; nothing was stored. Run it again to back up the restored database (the one replaced is kept as ${ended.keptAs}).`,
      );
      return 1;
    }
    io.err(`Backup FAILED: ${cliFailure(err)}`);
    await record({ ok: false, reason: toUserMessage(err) }).catch((e: unknown) => deps.log.warn({ err: e }, 'could not record the run'));
    if (isBotError(err) && err.message !== err.userMessage) io.err(err.message.split('\n').slice(-8).join('\n'));
    deps.log.debug({ err }, 'backup failed');
    return 1;
  } finally {
    await release();
  }
}

/** `pg-backup-bot list [target]`. */
export async function cliList(args: string[], deps: { config: Config; storage: Storage; io: CliIo }): Promise<number> {
  try {
    if (args.length > 1) {
      deps.io.err('usage: pg-backup-bot list [target]');
      return 2;
    }
    if (args[0] !== undefined && !TargetName.safeParse(args[0]).success) {
      deps.io.err(`"${args[0]}" is not a valid target name.`);
      return 2;
    }
    const [{ backups, failedTests }, stray] = await Promise.all([listWithTestVerdicts(deps.storage, args[0]), strayBackups(deps.storage, args[0])]);
    const noDir = backups.length === 0 ? await missingBackupDir(deps.config) : null;
    if (noDir) {
      deps.io.err(noDir);
      return 1;
    }
    // A target the config does not know and the storage has nothing of is a typo: said, and not a success.
    if (args[0] !== undefined && backups.length === 0) findTarget(deps.config, args[0]);
    const time = (at: Date) => formatInZone(at, deps.config.timezone);
    const damaged = deps.storage.damaged?.(args[0]) ?? [];
    const list = formatBackupList(backups, args[0], { time, limit: 50, takeOne: 'pg-backup-bot backup', damaged, failedTests, stray });
    deps.io.out(list.replace(/[*`]|:warning: |:wastebasket: |:x: /g, ''));
    // Point-in-time recovery's window, as /backup list shows it (restore-pitr's refusals send people here).
    const pitr = deps.config.targets.filter((t) => t.pitr && (args[0] === undefined || t.name === args[0]));
    if (pitr.length) {
      // The health room (and through it prom-client and the S3 client) is loaded only for a target with a WAL archive.
      const [{ readArchiveFacts }, { windowTime }, { windowText }] = await Promise.all([
        import('../health/index.ts'),
        import('../health/wal-conditions.ts'),
        import('../commands/wal-status.ts'),
      ]);
      const lines = await Promise.all(
        pitr.map(
          async (t) =>
            `• ${t.name}: ${windowText(deps.config, t.name, await readArchiveFacts(deps.config, t.name), windowTime).replace(/[*`]|:rotating_light: /g, '')}`,
        ),
      );
      deps.io.out(`\nPoint-in-time recovery\n${lines.join('\n')}`);
    }
    // Every stored backup damaged, or without a manifest, is no success (QA: a script saw exit 0 beside "No restorable backups").
    return backups.length === 0 && damaged.length + stray.length > 0 ? 1 : 0;
  } catch (err) {
    deps.io.err(toUserMessage(err));
    return 1;
  }
}
