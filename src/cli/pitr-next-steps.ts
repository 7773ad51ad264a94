import { formatDuration } from '../format.ts';
import type { SettledTarget } from '../postgres/pitr/last-commit.ts';

/**
 * What to look for in the recovered server's log once it is started, and what to do then, by --action: PostgreSQL
 * logs "archive recovery complete" only when it promotes. Paused at the target, it logs "pausing at the end of
 * recovery" (PostgreSQL 14 on; "recovery has paused" before, which 14 on logs only for pg_wal_replay_pause()) and waits, read-only,
 * for pg_wal_replay_resume(); shut down, "shutdown at recovery target" (QA: --action=pause was told to wait for
 * "archive recovery complete", which never comes while paused, and not how to go on).
 */
export function afterStart(o: {
  action: 'promote' | 'pause' | 'shutdown';
  settled: SettledTarget;
  runAs: string;
  dataDir: string;
  pgCtl: string;
  port: string | null;
}): string[] {
  const { settled } = o;
  const notReached = `"recovery ended before configured recovery target was reached" ${settled.notReached}.`;
  if (o.action === 'promote' || settled.toEnd)
    return [
      `Then check the log for ${settled.logSays} and "archive recovery complete"${o.action === 'pause' ? '' : ': until then the server refuses connections ("the database system is not accepting connections"; hot_standby is off), so nothing reads a database recovered halfway'};`,
      notReached,
      RESET_AFTER(o),
    ];
  const later = `for a later moment, stop it (\`${o.pgCtl} -D ${o.dataDir} stop\`), change the target restore-pitr wrote at the end of ${o.dataDir}/postgresql.auto.conf and start it again (recovery goes on from there); for an earlier one, lay it out again into an empty directory`;
  if (o.action === 'pause')
    return [
      `Then check the log for ${settled.logSays} and "pausing at the end of recovery" ("recovery has paused" before PostgreSQL 14): the server holds there, still in recovery, and answers read-only queries (nothing can be written until it is promoted).`,
      `Check the data: \`runuser -u ${o.runAs} -- psql -p ${o.port ?? '5432'} -d <database>\`. If it is the moment wanted, promote it with \`SELECT pg_wal_replay_resume();\` (as a superuser): recovery ends there and the log says "archive recovery complete". If not: ${later}.`,
      notReached,
      RESET_AFTER(o),
    ];
  return [
    `Then check the log for ${settled.logSays} and "shutdown at recovery target": the server stops there, still to be promoted.`,
    `To open it there, set \`recovery_target_action = 'promote'\` at the end of ${o.dataDir}/postgresql.auto.conf and start it again: it replays to the same target and promotes ("archive recovery complete"); ${later}.`,
    notReached,
    RESET_AFTER(o),
  ];
}

/** What restore-pitr wrote for the recovery alone, and ALTER SYSTEM RESET takes out of postgresql.auto.conf. */
export const RECOVERY_ONLY = [
  'restore_command',
  // Every kind of target: `latest` writes recovery_target_lsn or recovery_target = 'immediate' (last-commit.ts).
  'recovery_target',
  'recovery_target_time',
  'recovery_target_lsn',
  'recovery_target_xid',
  'recovery_target_name',
  'recovery_target_inclusive',
  'recovery_target_action',
  'recovery_target_timeline',
  'hot_standby',
] as const;

/**
 * Once promoted, the recovery's settings come out of postgresql.auto.conf: pg_basebackup copies that file, and a
 * standby made from the recovered server later would inherit them: the old recovery target and timeline (it would
 * not follow this server: refused at start, or stopped at the old target and acting on it), hot_standby off. archive_mode stays off until someone gives this server an
 * archive of its own: with the source's archive_command it would write its WAL into the source's archive.
 */
const RESET_AFTER = (o: { runAs: string; port: string | null; pgCtl: string; dataDir: string }) =>
  `Once promoted ("archive recovery complete"), take the recovery's settings out, or a standby made from this server later inherits them (pg_basebackup copies postgresql.auto.conf) and does not follow it: the old target and timeline, hot_standby off: \`runuser -u ${o.runAs} -- psql -p ${o.port ?? '5432'} ${RECOVERY_ONLY.map((k) => `-c "ALTER SYSTEM RESET ${k}"`).join(' ')}\`, then \`runuser -u ${o.runAs} -- ${o.pgCtl} -D ${o.dataDir} restart\`. archive_mode stays off until this server has an archive of its own: with the source's archive_command it would write into the source's archive.`;

/**
 * `latest` is the newest the archive recovers to, not the database's: how far that is, and how long ago, said with it
 * (QA: with the WAL stream down, "exactly what the database held" read as the database's last state). Past the usual
 * lag, why: a gap or a switch this recovery cannot cross (the WAL after it is archived), else a quiet source or a
 * stream that is down (second reader: a gap was blamed on the stream, and `check` was green).
 */
export function archiveEnds(
  target: string,
  w: { to: Date; reachesNewest: boolean; gap?: string | undefined; switched?: { timeline: number } | undefined },
  now: Date,
  along?: number,
): string {
  const age = now.getTime() - w.to.getTime();
  const reach = `${w.to.toISOString()} (${formatDuration(Math.max(0, age))} ago)`;
  if (along !== undefined) return `Along timeline ${along}, the archive reaches ${reach}.`;
  if (!w.reachesNewest) {
    const why = w.switched
      ? `the server moved to timeline ${w.switched.timeline}, which no base backup this recovery can start from reaches`
      : `segment ${w.gap ?? '(a gap)'} is missing after it`;
    return `Recovery reaches only ${reach}: ${why}. WAL archived after that cannot be replayed from this base backup; a base backup taken now opens a window past it (\`pg-backup-bot base-backup ${target}\`).`;
  }
  const head = `The archive holds WAL up to ${reach}: anything committed after that never reached it and is not in this copy`;
  return age > 120_000
    ? `${head}. That is older than the stream's usual lag (seconds, 30 s at most): either the source has written nothing since, or the WAL stream is down (\`pg-backup-bot check\` says which).`
    : `${head}.`;
}
