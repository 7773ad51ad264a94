import { formatInZone } from '../schedules/time.ts';
import { findTarget } from '../config.ts';
import { toUserMessage } from '../errors.ts';
import { serverLabel } from '../postgres/index.ts';
import { findRestorable, type Manifest } from '../storage/index.ts';
import { replacementWarning } from '../commands/replacement-warning.ts';
import { serverDatabaseRefusal } from '../commands/replace-guards.ts';
import { newerBackupsSaid } from '../commands/newer-backups.ts';
import { type RestoreRequest, SEE_LIST } from '../commands/restore-text.ts';
import { isWholeDatabase, scopeNamed } from '../restore-scope.ts';
import type { Config } from '../config.ts';
import type { Storage } from '../storage/index.ts';
import type { CliIo } from './backup-cli.ts';

type CliDeps = { config: Config; storage: Storage; io: CliIo };

type Restore = Extract<RestoreRequest, { verb: 'restore' }>;

/**
 * `pg-backup-bot restore <id> --into=<database>` without --yes: nothing is started. As in Slack, a backup that cannot
 * restore is refused, and so is one of the server's own databases (QA: it asked for --yes, then refused); else the
 * confirmation's warning (size, sessions, what is lost). Exit 2 (asked), 1 (refused).
 */
export async function askFirst(deps: CliDeps, req: Restore, into: string, withGlobals: boolean): Promise<number> {
  const { io } = deps;
  const manifest = await findRestorable(deps.storage, req.backupId, SEE_LIST.cli, withGlobals).catch((err: unknown) => new Error(toUserMessage(err)));
  if (manifest instanceof Error) {
    io.err(`Restore FAILED: ${manifest.message}`);
    return 1;
  }
  const refused = isWholeDatabase(req) ? serverDatabaseRefusal(into, manifest) : null;
  if (refused) {
    io.err(`Restore FAILED: ${refused}`);
    return 1;
  }
  const said = isWholeDatabase(req) ? await replacementSaid(deps, manifest, into).catch(() => null) : null;
  io.err(
    said ??
      (isWholeDatabase(req)
        ? `Replacing the database "${into}" loses everything written to it after the backup (it is kept, renamed). Add --yes to confirm.`
        : `Restoring into the existing database "${into}" overwrites ${scopeNamed(req, '')} there with their contents from the backup: rows written since in them are lost. Add --yes to confirm.`),
  );
  return 2;
}

async function replacementSaid(deps: CliDeps, manifest: Manifest, into: string): Promise<string | null> {
  const url = findTarget(deps.config, manifest.target).url;
  const warning = (await replacementWarning(url, into, manifest, (d) => formatInZone(d, deps.config.timezone)))?.text ?? null;
  if (warning === null)
    return `There is no database "${into}" on ${serverLabel(url)}, so nothing to replace; nothing was started. To restore it as a new database: pg-backup-bot restore ${manifest.backupId} (then rename it).`;
  const newer = await newerBackupsSaid(
    deps.storage,
    manifest,
    (id) => id,
    (d) => formatInZone(d, deps.config.timezone),
  );
  return `${`${warning}${newer}`.replace(/^:warning: /, '').replace(/[*`]/g, '')} Add --yes to confirm.`;
}
