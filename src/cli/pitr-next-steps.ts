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
  if (o.action === 'promote' || settled.toEnd) return [`Then check the log for ${settled.logSays} and "archive recovery complete";`, notReached];
  const later = `for a later moment, stop it (\`${o.pgCtl} -D ${o.dataDir} stop\`), change the target restore-pitr wrote at the end of ${o.dataDir}/postgresql.auto.conf and start it again (recovery goes on from there); for an earlier one, lay it out again into an empty directory`;
  if (o.action === 'pause')
    return [
      `Then check the log for ${settled.logSays} and "pausing at the end of recovery" ("recovery has paused" before PostgreSQL 14): the server holds there, still in recovery, and answers read-only queries (nothing can be written until it is promoted).`,
      `Check the data: \`runuser -u ${o.runAs} -- psql -p ${o.port ?? '5432'} -d <database>\`. If it is the moment wanted, promote it with \`SELECT pg_wal_replay_resume();\` (as a superuser): recovery ends there and the log says "archive recovery complete". If not: ${later}.`,
      notReached,
    ];
  return [
    `Then check the log for ${settled.logSays} and "shutdown at recovery target": the server stops there, still to be promoted.`,
    `To open it there, set \`recovery_target_action = 'promote'\` at the end of ${o.dataDir}/postgresql.auto.conf and start it again: it replays to the same target and promotes ("archive recovery complete"); ${later}.`,
    notReached,
  ];
}
