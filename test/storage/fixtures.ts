import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { finished } from 'node:stream/promises';
import { createLogger } from '../../src/logger.ts';
import { LocalStorage, type Manifest } from '../../src/storage/index.ts';

export async function tempRoot(): Promise<{ root: string; storage: LocalStorage; cleanup(): Promise<void> }> {
  const root = await mkdtemp(join(tmpdir(), 'pgbb-ls-'));
  return { root, storage: new LocalStorage(root, createLogger({ level: 'silent' })), cleanup: () => rm(root, { recursive: true, force: true }) };
}

export function manifestFor(target: string, backupId: string, startedAt: string, artifact: { bytes: number; sha256: string }): Manifest {
  return {
    formatVersion: 1,
    backupId,
    target,
    kind: 'manual',
    retentionClass: 'manual',
    retainUntil: null,
    requestedBy: { source: 'cli' },
    jobId: null,
    label: null,
    startedAt,
    finishedAt: startedAt,
    durationMs: 0,
    database: { name: 'db', serverVersion: '15.20', serverVersionNum: 150020, pgDumpVersion: 'pg_dump (PostgreSQL) 15.20', sizeBytes: 1 },
    snapshotId: '00000003-00000002-1',
    artifacts: [
      {
        file: 'database.pgdump.zst',
        role: 'database',
        format: 'custom',
        compression: 'zstd',
        compressionLevel: 1,
        encryption: null,
        bytes: artifact.bytes,
        sha256: artifact.sha256,
        rawBytes: artifact.bytes,
      },
    ],
    globals: { included: false, rolePasswords: false, note: 'test' },
    verification: {
      tables: [],
      objects: {
        schemas: 1,
        tables: 0,
        partitionedTables: 0,
        constraints: { p: 0, f: 0, u: 0, c: 0, x: 0 },
        indexes: 0,
        functions: 0,
        aggregates: 0,
        triggers: 0,
        sequences: 0,
        views: 0,
        materializedViews: 0,
        domains: 0,
        types: 0,
        extensions: 1,
      },
    },
    tool: { name: 'pg-backup-bot', version: 'test' },
  };
}

/** A whole finished backup through the public interface: begin, write + commit one artifact, manifest. */
export async function writeBackup(storage: LocalStorage, target: string, backupId: string, startedAt: string, body = `data of ${backupId}`): Promise<Manifest> {
  await storage.beginBackup(target, backupId);
  const w = await storage.createArtifactWriter(target, backupId, 'database.pgdump.zst');
  w.stream.end(body);
  await finished(w.stream);
  await w.commit();
  const m = manifestFor(target, backupId, startedAt, { bytes: Buffer.byteLength(body), sha256: createHash('sha256').update(body).digest('hex') });
  await storage.writeManifest(m);
  return m;
}
