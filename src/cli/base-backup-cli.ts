import { findTarget, type Config } from '../config.ts';
import { findAgeEngine } from '../crypto/age-cli.ts';
import { toUserMessage } from '../errors.ts';
import { formatBytes, formatDuration } from '../format.ts';
import { runBaseBackup } from '../postgres/pitr/base-backup.ts';
import { findPgProgram, findPgTools, findZstd } from '../postgres/tools.ts';

/**
 * `pg-backup-bot base-backup [target]`: a base backup for point-in-time recovery, now, in the foreground, of a
 * target with a `pitr` section (its replication connection). Local storage (BACKUP_DIR) only in this version.
 */
export async function cliBaseBackup(
  args: string[],
  deps: { config: Config; io: { out(l: string): void; err(l: string): void }; signal?: AbortSignal },
): Promise<number> {
  const { config, io } = deps;
  if (args.length > 1) {
    io.err('usage: pg-backup-bot base-backup [target]');
    return 2;
  }
  try {
    const target = findTarget(config, args[0]);
    if (!target.pitr) {
      io.err(`Target ${target.name} has no pitr section in the config file: a base backup needs its replication connection (pitr.urlEnv).`);
      return 2;
    }
    if (config.s3?.mode === 'primary') {
      io.err('Base backups go to local storage (BACKUP_DIR) in this version; S3 as the primary store is not supported for them yet.');
      return 2;
    }
    const tools = await findPgTools({ serverMajor: 10, ...(config.pgBinDir ? { pgBinDir: config.pgBinDir } : {}) });
    const pgBasebackup = await findPgProgram('pg_basebackup', tools.pgDump, tools.major);
    if (!pgBasebackup) throw new Error(`pg_basebackup is not installed (postgresql-client-${tools.major})`);
    const encrypted = config.encryption.recipients.length > 0;
    if (!encrypted && target.environment === 'production' && !config.encryption.optedOut) {
      io.err(`Refusing an unencrypted base backup of ${target.name} (production): set BACKUP_ENCRYPTION_RECIPIENT.`);
      return 1;
    }
    io.err(`Base backup of ${target.name} to ${config.backupDir} …`);
    const b = await runBaseBackup({
      target: target.name,
      root: config.backupDir,
      replicationUrl: target.pitr.url,
      pgBasebackup,
      zstd: await findZstd(),
      level: config.compressionLevel,
      recipients: config.encryption.recipients,
      ageEngine: encrypted ? await findAgeEngine() : undefined,
      ...(deps.signal ? { signal: deps.signal } : {}),
    });
    io.out(
      [
        `Base backup ${b.id} OK`,
        `  size        ${formatBytes(b.bytes)} stored (${formatBytes(b.rawBytes)} of cluster), ${b.encryption === 'age' ? 'encrypted with age' : 'not encrypted'}`,
        `  duration    ${formatDuration(Date.parse(b.finishedAt) - Date.parse(b.startedAt))}`,
        `  WAL         from ${b.startLsn} to ${b.endLsn} on timeline ${b.timeline} (from the WAL archive)`,
        `  sha256      ${b.sha256}`,
      ].join('\n'),
    );
    return 0;
  } catch (err) {
    io.err(`Base backup FAILED: ${toUserMessage(err)}`);
    return 1;
  }
}
