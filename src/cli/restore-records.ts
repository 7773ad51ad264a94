import type { Logger } from '../logger.ts';
import { type Manifest, restoreRecord, type RestoreRecord, type Storage } from '../storage/index.ts';

/** Who ran a restore from the command line, for its record. */
export const requestedBy = (user = process.env.USER ?? process.env.LOGNAME): RestoreRecord['requestedBy'] => ({
  source: 'cli',
  ...(user ? { userName: user } : {}),
});

export type Begun = {
  manifest: Manifest;
  target: string;
  into: { database: string; create: boolean };
  startedAt: Date;
  staging?: string;
};

/** What a restore that has not finished is recorded as, until its verdict overwrites it; the record's id, or none. */
export async function writeUnfinished(
  deps: { storage: Storage; log: Logger },
  b: Begun,
  req: { tables: string[]; schemas: string[]; into: string | null },
): Promise<string | undefined> {
  const record = restoreRecord({
    outcome: null,
    failure: `not finished when this was written: the restore is still running, or its process was killed; then ${b.staging ?? b.into.database} may be left on the server, part-restored (\`pg-backup-bot restore list\` shows it, \`restore drop\` removes it)`,
    target: b.target,
    backupId: b.manifest.backupId,
    startedAt: b.startedAt,
    finishedAt: b.startedAt,
    requestedBy: requestedBy(),
    jobId: null,
    selection: { tables: req.tables, schemas: req.schemas, into: req.into, created: b.into.create },
    database: b.into.database,
  });
  const written = { ...record, ...(b.staging ? { staging: b.staging } : {}) };
  return deps.storage.writeRecord(written).then(
    () => written.id,
    (err: unknown) => {
      deps.log.warn({ err }, 'could not record the restore before it started');
      return undefined;
    },
  );
}

export const withId = <R extends { id: string }>(id: string | undefined, r: R): R => (id ? { ...r, id } : r);
