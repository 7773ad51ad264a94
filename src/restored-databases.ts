import type { Config } from './config.ts';
import { findTarget } from './config.ts';
import { BotError } from './errors.ts';
import { formatBytes, formatTime } from './format.ts';
import { serverLabel } from './postgres/index.ts';
import { databaseExists, databaseSizes, describeDatabase, dropDatabase } from './postgres/restore/index.ts';
import type { RestoreRecord, Storage } from './storage/index.ts';

/**
 * The databases restores left on the targets' servers, so they do not pile up: a restore into a new database
 * that was kept (a full restore that passed, a selective one into a new database), and the database a
 * replacement kept under `<name>_replaced_<stamp>`. Known from the restore records, checked live on the server:
 * one dropped by hand is not listed, and only a database a record names may be dropped by the bot.
 */
export interface RestoredDatabase {
  name: string;
  target: string;
  server: string;
  serverUrl: string;
  bytes: number;
  record: RestoreRecord;
  /**
   * `made`: a restore created it; `replaced`: a replacement kept it (the database as it was before); `staging`: a
   * replacement that did not finish left its copy of the backup (never used).
   */
  how: 'made' | 'replaced' | 'staging';
}

/**
 * The server a record's databases are on: the target's, RESTORE_SERVER_URL's (`--to=restore-server`), or the one the
 * CLI was given by an environment variable, read from the environment now (QA: those were looked for on the target's
 * server, and `restore drop` said "not on its server any more"); undefined where it is not known here.
 */
function serverOf(config: Config, r: RestoreRecord): string | undefined {
  if (r.serverUrlEnv) return process.env[r.serverUrlEnv] || undefined;
  return r.restoreServer ? (config.restore.serverUrl ?? undefined) : config.targets.find((x) => x.name === r.target)?.url;
}

function candidates(records: RestoreRecord[]): Array<{ name: string; how: RestoredDatabase['how']; record: RestoreRecord }> {
  const out: Array<{ name: string; how: RestoredDatabase['how']; record: RestoreRecord }> = [];
  for (const r of records) {
    if (r.selection?.created && !r.dropped) out.push({ name: r.database, how: 'made', record: r });
    if (r.keptAs) out.push({ name: r.keptAs, how: 'replaced', record: r });
    if (r.staging) out.push({ name: r.staging, how: 'staging', record: r });
  }
  return out;
}

export async function restoredDatabases(
  deps: { config: Config; storage: Storage },
  target?: string,
  /** The restore records, when the caller has read them already. */
  read?: RestoreRecord[],
): Promise<RestoredDatabase[]> {
  if (target !== undefined) findTarget(deps.config, target);
  const records = read ?? (await deps.storage.listRecords('restore', target));
  // One query per server, however many restores the records hold: this runs inside Slack's 3 s.
  const byServer = new Map<string, Array<ReturnType<typeof candidates>[number]>>();
  for (const c of candidates(records)) {
    const url = serverOf(deps.config, c.record);
    if (!url) continue; // a target (or restore server) since removed from the config: where it lives is not known any more
    byServer.set(url, [...(byServer.get(url) ?? []), c]);
  }
  const out: RestoredDatabase[] = [];
  for (const [serverUrl, list] of byServer) {
    const sizes = await databaseSizes(serverUrl, [...new Set(list.map((c) => c.name))]);
    for (const c of list) {
      const bytes = sizes.get(c.name);
      if (bytes !== undefined)
        out.push({ name: c.name, target: c.record.target, server: serverLabel(serverUrl), serverUrl, bytes, record: c.record, how: c.how });
    }
  }
  return out.sort((a, b) => Date.parse(b.record.startedAt) - Date.parse(a.record.startedAt));
}

const HOW: Record<RestoredDatabase['how'], (database: string, r: RestoreRecord) => string> = {
  // A restore that failed with its database left (the server went away, and the drop with it; counts that differ): not a good copy.
  made: (_db, r) => (r.problems.length === 0 ? 'restored from' : '*left by a restore that failed* (perhaps part of it: check before use), from'),
  replaced: (db) => `what ${db} was before it was replaced by`,
  staging: (db) => `left by a replacement of ${db} that did not finish (never used), a copy of`,
};

/**
 * Databases restores made on servers named by an environment variable not set here (the CLI's --to-url-env): they
 * cannot be looked for, and are named apart, not left out (QA: `restore list` in a new shell did not show them).
 */
export function unlocated(records: RestoreRecord[]): Array<{ name: string; env: string }> {
  return candidates(records).flatMap((c) =>
    c.record.serverUrlEnv && !process.env[c.record.serverUrlEnv] ? [{ name: c.name, env: c.record.serverUrlEnv }] : [],
  );
}

const unlocatedText = (u: ReadonlyArray<{ name: string; env: string }>) =>
  u.length === 0
    ? ''
    : `\nRecorded, not looked for (restored onto a server named by a variable not set here; set it as it was for that restore to see whether they are still there, and to drop them): ${u.map((x) => `\`${x.name}\` (${x.env})`).join(', ')}.`;

export function restoredDatabasesText(
  list: RestoredDatabase[],
  target?: string,
  drop = '/restore drop <database>',
  unseen: ReadonlyArray<{ name: string; env: string }> = [],
): string {
  if (list.length === 0) return `No databases made by restores are left${target ? ` on the server of *${target}*` : ''}.${unlocatedText(unseen)}`;
  const who = (r: RestoreRecord) => (r.requestedBy.userId ? `<@${r.requestedBy.userId}>` : (r.requestedBy.userName ?? r.requestedBy.source));
  const lines = list.map(
    (d) =>
      `• \`${d.name}\` on ${d.server} · ${formatBytes(d.bytes)} · ${HOW[d.how](d.record.database, d.record)} \`${d.record.backupId}\` · by ${who(d.record)} · ${formatTime(d.record.startedAt)}`,
  );
  return `*Databases made by restores* (newest first; \`${drop}\` removes one):\n${lines.join('\n')}${unlocatedText(unseen)}`;
}

/** `restore list` in a terminal: its own drop command, not Slack's (QA); Slack's mentions (<@U0ANA>) as plain ids. */
export async function restoredDatabasesForCli(deps: { config: Config; storage: Storage }, target?: string): Promise<string> {
  const records = await deps.storage.listRecords('restore', target);
  return restoredDatabasesText(await restoredDatabases(deps, target, records), target, 'pg-backup-bot restore drop <database>', unlocated(records))
    .replace(/[*`]/g, '')
    .replace(/<@(\w+)>/g, '@$1');
}

/** Drops a database a restore made; refuses any other name, whatever it looks like. */
export async function dropRestoredDatabase(deps: { config: Config; storage: Storage }, name: string): Promise<string> {
  const records = await deps.storage.listRecords('restore');
  const found = (await restoredDatabases(deps, undefined, records)).find((d) => d.name === name);
  // A record names it, on a server named by a variable not set here: said, not "dropped already".
  const named = candidates(records).find((c) => c.name === name);
  const env = named?.record.serverUrlEnv;
  if (!found && env && !process.env[env])
    throw new BotError(
      'bad_request',
      `\`${name}\` was restored onto the server ${env} named; set ${env} as it was for that restore to drop it. Nothing was dropped.`,
    );
  // A record names it, but the server has it no more: dropped already (by this command, retention or by hand).
  if (!found && named) throw new BotError('bad_request', `\`${name}\` is not on its server any more (dropped already?); nothing was dropped.`);
  if (!found) {
    throw new BotError(
      'bad_request',
      `\`${name}\` is not a database a restore made (\`/restore list\` or \`pg-backup-bot restore list\` shows those); the bot drops only those. Nothing was dropped.`,
    );
  }
  // A replacement's copy may still be in use by an attempt of its job that has not given up (a lost lock, a retry).
  const inUse = found.how === 'staging' ? ((await describeDatabase(found.serverUrl, name))?.connections ?? 0) : 0;
  if (inUse > 0)
    throw new BotError(
      'bad_request',
      `\`${name}\` has ${inUse} open session(s): a restore may still be running into it. Nothing was dropped; try again once it ends.`,
    );
  await dropDatabase(found.serverUrl, name);
  if (await databaseExists(found.serverUrl, name)) throw new BotError('storage_failed', `\`${name}\` is still on ${found.server} after DROP DATABASE.`);
  // Recorded: a restore onto a server this process may later not know (its URL variable unset) is then not named as
  // perhaps still there (second reader: a year of rehearsals' copies, each dropped, listed as "not looked for").
  if (found.how === 'made') await deps.storage.writeRecord({ ...found.record, dropped: true }).catch(() => undefined);
  return `Dropped \`${name}\` (${formatBytes(found.bytes)}) on ${found.server}.`;
}

/**
 * `restore.expireAfterDays` in the config: databases restores made, and the copies replacements left unfinished, are
 * dropped this many days after their restore by the daily retention run (which says so in the channel). A database a
 * replacement kept (`…_replaced_…`) is never dropped by it: the only copy of what was written after the backup, kept
 * "until an admin drops it" as every message says (QA: retention dropped it while the verdict said kept); it is named
 * each run instead, with the command that drops it. Returns a sentence per database dropped, or that would be with
 * `dryRun`, or that could not be, or kept.
 */
export async function expireRestoredDatabases(deps: { config: Config; storage: Storage }, o: { days: number; now: Date; dryRun: boolean }): Promise<string[]> {
  const cutoff = o.now.getTime() - o.days * 86_400_000;
  const lines: string[] = [];
  for (const d of await restoredDatabases(deps)) {
    if (Date.parse(d.record.finishedAt) > cutoff) continue;
    const when = { made: 'restored', replaced: `kept when ${d.record.database} was replaced`, staging: `left by a replacement of ${d.record.database}` }[d.how];
    const what = `\`${d.name}\` on ${d.server} (${formatBytes(d.bytes)}, ${when} ${formatTime(d.record.finishedAt)})`;
    if (d.how === 'replaced') {
      lines.push(`kept ${what}: the only copy of what was written to ${d.record.database} after its backup; \`/restore drop ${d.name}\` (admins) drops it`);
      continue;
    }
    if (o.dryRun) {
      lines.push(`would drop ${what}`);
      continue;
    }
    await dropDatabase(d.serverUrl, d.name).then(
      () => lines.push(`dropped ${what}`),
      (err: unknown) => lines.push(`could not drop ${what}: ${(err as Error).message}`),
    );
  }
  return lines;
}
