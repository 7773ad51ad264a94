import { formatBytes, formatTime } from '../format.ts';
import { withDeadline } from '../jobs/producers.ts';
import { serverLabel } from '../postgres/index.ts';
import { type DatabaseInUse, describeDatabase, replacedName } from '../postgres/restore/index.ts';
import type { Manifest } from '../storage/index.ts';
import { otherDatabase, refuseServerDatabase } from './replace-guards.ts';

/**
 * What replacing a whole database costs, said before anyone clicks: its size, the sessions that will be ended, and
 * what is lost (everything written after the backup). Null when there is no such database. Bounded by Slack's
 * 3 s: the server must answer within 2 s. `time`: how the backup's time is shown (Slack: each reader's zone,
 * slack-time.ts; the CLI: the configured zone).
 */
export async function replacementWarning(
  serverUrl: string,
  database: string,
  m: Manifest,
  time: (d: Date) => string = formatTime,
): Promise<{ text: string; oid: number } | null> {
  refuseServerDatabase(database, m);
  const inUse = await withDeadline(2000, describeDatabase(serverUrl, database), 'looking the database up', 'postgres');
  if (!inUse) return null;
  return { text: replacementText(serverUrl, database, m, inUse, time), oid: inUse.oid };
}

function replacementText(serverUrl: string, database: string, m: Manifest, inUse: DatabaseInUse, time: (d: Date) => string): string {
  const at = time(new Date(m.startedAt));
  const sessions = inUse.connections === 1 ? '1 open connection' : `${inUse.connections} open connections`;
  return `:warning: This will *replace* the database \`${database}\` on ${serverLabel(serverUrl)} (${formatBytes(inUse.bytes)}, ${sessions}, which will be ended) with backup \`${m.backupId}\`, taken ${at}: *everything written to ${database} after ${at} is lost.*${otherDatabase(m, database)} The backup is restored and verified beside it first; if that fails, \`${database}\` is not touched. The current database is kept as \`${replacedName(database, new Date())}\` (or similar) until an admin drops it.${diskNeeded(m)}`;
}

/**
 * A whole database restored beside a live one takes that much disk on its server again, and both stay after a swap:
 * PostgreSQL cannot say how much is free, so it is said for whoever can look, before the server's disk fills.
 */
export function diskNeeded(m: Manifest): string {
  // And the WAL the load writes, in pg_wal on the same disk until checkpoints recycle it (QA: a replacement on a disk
  // with a little more than the database's size free filled pg_wal, and the whole server stopped until space was freed).
  return ` *Disk:* the copy needs about ${formatBytes(m.database.sizeBytes)} free on that server (the database's size when the backup was taken), and as much again for the WAL the load writes (more while a replication slot or WAL archiving holds it back): a server whose disk fills stops, every database on it.`;
}

/**
 * A confirmation's text as section blocks of at most 3000 characters each (Slack refuses a longer one with
 * `invalid_blocks`, and the whole reply with it): split after a sentence, never inside a `<!date…>` token or a name.
 */
export function warningSections(text: string, max = 3000): Array<{ type: 'section'; text: { type: 'mrkdwn'; text: string } }> {
  const out: string[] = [];
  let rest = text;
  // Inside a `<!date^…|…>` or `<@U…>` token: a cut there would show it raw (second reader).
  const inToken = (t: string, i: number) => t.lastIndexOf('<', i) > t.lastIndexOf('>', i);
  const before = (t: string, i: number) => (inToken(t, i) ? t.lastIndexOf('<', i) : i);
  while (rest.length > max) {
    const cut = before(rest, Math.max(rest.lastIndexOf('. ', max - 1), rest.lastIndexOf('; ', max - 1)));
    const space = before(rest, rest.lastIndexOf(' ', max - 1));
    const at = cut > max / 2 ? cut + 1 : space > 0 ? space : max;
    out.push(rest.slice(0, at).trimEnd());
    rest = rest.slice(at).trimStart();
  }
  out.push(rest);
  return out.map((t) => ({ type: 'section', text: { type: 'mrkdwn', text: t } }));
}
