import { readFileSync } from 'node:fs';
import type { Manifest } from '../../storage/index.ts';
import { isWholeDatabase, type DumpScope } from '../dump-scope.ts';
import type { PgTools } from '../tools.ts';
import { DUMP_TIME_ZONE, type Dumped } from './dump-in-snapshot.ts';
import type { DatabaseInfo } from './snapshot.ts';
import type { VerifyResult } from './verify.ts';

let version: string | undefined;

/** Our package.json's version, found upward from this module (src/postgres/backup, dist/postgres/backup or dist/bundle). */
function toolVersion(): string {
  if (version !== undefined) return version;
  version = '0.0.0';
  for (let dir = new URL('./', import.meta.url); dir.pathname !== '/'; dir = new URL('../', dir)) {
    try {
      const pkg = JSON.parse(readFileSync(new URL('package.json', dir), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'pg-backup-bot') {
        version = pkg.version ?? version;
        break;
      }
    } catch {
      // No package.json here, or not ours (dist/bundle has a bare one): look further up.
    }
  }
  return version;
}

/** Who asked for the backup and how long it is kept: the manifest's fields that come from the request. */
export interface BackupRequest {
  target: { name: string };
  kind: Manifest['kind'];
  retentionClass: Manifest['retentionClass'];
  retainUntil: Date | null;
  requestedBy: Manifest['requestedBy'];
  jobId: string | null;
  label: string | null;
}

/**
 * The manifest of a backup whose artifacts are committed and read back. The database artifact's raw size comes from
 * zstd's summary, else from reading it back in full.
 */
export function backupManifest(m: {
  request: BackupRequest;
  backupId: string;
  startedAt: Date;
  finishedAt: Date;
  source: { snapshot: { snapshotId: string; info: DatabaseInfo }; tools: PgTools };
  dumped: Dumped;
  checked: VerifyResult;
  scope: DumpScope;
}): Manifest {
  const { request: r, dumped } = m;
  const database = m.source.snapshot.info;
  const rawBytes = dumped.database.artifact.rawBytes ?? m.checked.rawBytes ?? 0;
  const artifacts = [{ ...dumped.database.artifact, rawBytes }];
  if (dumped.globals.dumped) artifacts.push({ ...dumped.globals.dumped.artifact, rawBytes: dumped.globals.dumped.artifact.rawBytes ?? 0 });
  return {
    formatVersion: 1,
    backupId: m.backupId,
    target: r.target.name,
    kind: r.kind,
    retentionClass: r.retentionClass,
    retainUntil: r.retainUntil ? r.retainUntil.toISOString() : null,
    requestedBy: r.requestedBy,
    jobId: r.jobId,
    label: r.label,
    startedAt: m.startedAt.toISOString(),
    finishedAt: m.finishedAt.toISOString(),
    durationMs: Math.max(0, m.finishedAt.getTime() - m.startedAt.getTime()),
    database: {
      name: database.name,
      serverVersion: database.serverVersion,
      serverVersionNum: database.serverVersionNum,
      pgDumpVersion: m.source.tools.version,
      dumpTimeZone: DUMP_TIME_ZONE,
      sizeBytes: database.sizeBytes,
    },
    snapshotId: m.source.snapshot.snapshotId,
    artifacts,
    globals: dumped.globals.globals,
    verification: { tables: dumped.tables, objects: dumped.objects },
    ...(isWholeDatabase(m.scope) ? {} : { scope: m.scope }),
    ...(dumped.definitions ? { definitions: dumped.definitions } : {}),
    tool: { name: 'pg-backup-bot', version: toolVersion() },
  };
}
