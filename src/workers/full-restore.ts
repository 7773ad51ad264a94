import type { Logger } from '../logger.ts';
import { formatCount } from '../format.ts';
import type { RestoreJobData } from '../jobs/queues.ts';
import { runRestoreTest, type SelectiveRestoreOutcome } from '../postgres/restore/index.ts';
import { serverLabel } from '../postgres/index.ts';
import { totalRows, type Manifest } from '../storage/index.ts';
import type { Config } from '../config.ts';
import type { Storage } from '../storage/index.ts';

/** `/restore <backup-id>` with nothing selected: the whole database, into a new one. */
export function isFullRestore(data: Pick<RestoreJobData, 'tables' | 'schemas' | 'into'>): boolean {
  return data.tables.length === 0 && data.schemas.length === 0 && data.into.create;
}

/**
 * A full restore is a restore test that keeps its database (postgres/restore `keep`): checksums, the source's
 * locale and settings, pg_restore, the counts of every table and object against the manifest, the smoke queries.
 * The new database stays only when all of that passed; otherwise it is dropped and the verdict says why.
 */
export async function runFullRestore(
  deps: { config: Config; storage: Storage },
  o: {
    manifest: Manifest;
    serverUrl: string;
    database: string;
    jobId: string;
    signal?: AbortSignal | undefined;
    log: Logger;
    progress: (p: { phase: string }) => void;
  },
): Promise<SelectiveRestoreOutcome> {
  const { id: _id, ...outcome } = await runRestoreTest({
    manifest: o.manifest,
    storage: deps.storage,
    serverUrl: o.serverUrl,
    scratchKey: `restore:${o.jobId}`,
    scratchScope: deps.config.queuePrefix,
    keep: { database: o.database },
    jobs: deps.config.restoreTest.jobs,
    smokeQueries: deps.config.restoreTest.smokeQueries,
    ...(deps.config.pgBinDir ? { pgBinDir: deps.config.pgBinDir } : {}),
    identityFile: deps.config.encryption.identityFile,
    ...(o.signal ? { signal: o.signal } : {}),
    log: o.log,
    onProgress: o.progress,
  });
  const where = `${o.database} on ${serverLabel(o.serverUrl)}`;
  const notes = outcome.passed
    ? [
        `${where}: ${formatCount(outcome.checked.tables)} tables and ${formatCount(totalRows(o.manifest))} rows, equal to the backup's counts; ${outcome.checked.objects.length} kinds of objects compared.`,
        // Restored as restore tests restore (--no-owner --no-acl): the roles of the source need not exist here.
        `Owners and grants were not restored: every object belongs to the bot's role. Grant the application's role access before pointing it at ${o.database}.`,
      ]
    : [`${where} was dropped: a database the bot leaves behind is one it verified.`];
  return { ...outcome, selection: { tables: [], schemas: [], into: null, created: true }, restoredTables: [], notes };
}
