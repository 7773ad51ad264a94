import { cliFailure } from './cli-failure.ts';
import { findTarget, type Config } from '../config.ts';
import { formatBytes, formatDuration } from '../format.ts';
import { pitrArchiveRoot, pitrInS3 } from '../postgres/pitr/pitr-location.ts';
import { readSlot } from '../postgres/pitr/slot-state.ts';
import { baseBackupUnsupported, takeBaseBackup, unencryptedRefusal } from '../postgres/pitr/take-base-backup.ts';

/**
 * `pg-backup-bot base-backup [target]`: a base backup for point-in-time recovery, now, in the foreground, of a
 * target with a `pitr` section (its replication connection). Local storage (BACKUP_DIR) only in this version. The
 * same code as `/backup now --physical` and the schedule's jobs (postgres/pitr/take-base-backup.ts).
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
    const unsupported = baseBackupUnsupported(config, target);
    if (unsupported) {
      io.err(unsupported);
      return 2;
    }
    const refused = unencryptedRefusal(config, target);
    if (refused) {
      io.err(refused);
      return 1;
    }
    io.err(`Base backup of ${target.name} to ${pitrArchiveRoot(config)} …`);
    const b = await takeBaseBackup(config, target, { signal: deps.signal, warn: (m) => io.err(m) });
    io.out(
      [
        `Base backup ${b.id} OK`,
        `  size        ${formatBytes(b.bytes)} stored (${formatBytes(b.rawBytes)} of cluster), ${b.encryption === 'age' ? 'encrypted with age' : 'not encrypted'}`,
        `  duration    ${formatDuration(Date.parse(b.finishedAt) - Date.parse(b.startedAt))}`,
        `  WAL         ${b.startLsn} to ${b.endLsn} on timeline ${b.timeline} (its backup_manifest): recovery from it needs that WAL in the archive; \`pg-backup-bot list ${target.name}\` shows when the window opens`,
        `  sha256      ${b.sha256} (${pitrInS3(config) ? 'hashed as uploaded, size checked in S3' : 'read back and matched'})`,
        ...(await streamNote(target.url, target.pitr?.slot ?? `pgbb_${target.name}`)),
      ].join('\n'),
    );
    return 0;
  } catch (err) {
    io.err(`Base backup FAILED: ${cliFailure(err)}`);
    return 1;
  }
}

/**
 * A base backup is recovered from only with the WAL after it archived: said when no receiver streams the target's
 * WAL now (QA: OK, and not a word that no worker was running). Nothing when the slot cannot be read.
 */
async function streamNote(url: string, slot: string): Promise<string[]> {
  const s = await readSlot(url, slot).catch(() => null);
  if (!s || s.active) return [];
  const why = s.exists ? `its slot ${slot} has no receiver connected` : `its slot ${slot} does not exist on the server`;
  return [
    `  note        no worker streams this target's WAL now (${why}): the window opens only once WAL written after this base backup is archived; start a worker (\`pg-backup-bot worker\` or \`npm start\`) and see \`/backup status\``,
  ];
}
