import { findAgeEngine, type AgeEngine } from '../../crypto/age-cli.ts';
import type { Logger } from '../../logger.ts';
import { clientFailure, type FailureContext } from '../failures.ts';
import { findPgTools, findZstd, type PgTools } from '../tools.ts';
import { readBackKey } from './backup-encryption.ts';
import { throwIfCanceled } from './backup-failure.ts';
import { findNativeTools } from './native-pipe.ts';
import { openSnapshot, serverMajor, type Snapshot } from './snapshot.ts';

/** What a backup dumps from and with: the exported snapshot, the tools matched to its server, and the read-back key. */
export interface BackupSource {
  snapshot: Snapshot;
  tools: PgTools;
  zstd: string;
  ageEngine: AgeEngine | undefined;
  /** The key pair the database artifact is also encrypted to, so this worker can read it back (backup-encryption.ts). */
  readBack: Awaited<ReturnType<typeof readBackKey>> | undefined;
}

export type PreparedTools = ReturnType<typeof prepareTools>;

/**
 * Tools that do not depend on the server's version, looked for while the snapshot is opened. The read-back key
 * lives in memory only, for this backup (backup-encryption.ts): the worker keeps no secret key.
 */
export function prepareTools(o: { zstdPath?: string | undefined; agePath?: string | null | undefined }, encryption: { recipients: string[] } | null) {
  const preparing = Promise.all([
    findZstd(o.zstdPath),
    // Probed once per process (tee and a SHA-256 command); found now, the dump's pipeline starts without a wait.
    findNativeTools(),
    encryption ? findAgeEngine(o.agePath) : undefined,
    encryption ? readBackKey() : undefined,
  ]);
  preparing.catch(() => undefined); // awaited by openSource; never unhandled meanwhile
  return preparing;
}

/**
 * Opens the snapshot the backup is taken in and finds pg_dump & co. for its server. On failure nothing stays open.
 * The snapshot's `close()` must come once pg_dump is done with it; until then a cancel ends its connection.
 */
export async function openSource(s: {
  url: string;
  lockWaitMs: number;
  pgBinDir?: string | undefined;
  preparing: PreparedTools;
  ctx: FailureContext;
  signal?: AbortSignal | undefined;
  progress: (p: { phase: 'connecting' }) => void;
  log: Logger;
}): Promise<BackupSource> {
  s.progress({ phase: 'connecting' });
  const opened = await openSnapshot(s.url, { lockTimeoutMs: s.lockWaitMs }).catch((err: unknown) => {
    throw clientFailure(err, s.ctx);
  });
  const snapshot = endedOnAbort(opened, s.signal);
  try {
    throwIfCanceled(s.signal);
    const tools = await findPgTools({ serverMajor: serverMajor(snapshot.info.serverVersionNum), pgBinDir: s.pgBinDir });
    const [zstd, , ageEngine, readBack] = await s.preparing;
    s.log.info(
      { pgDump: tools.pgDump, server: snapshot.info.serverVersion, snapshot: snapshot.snapshotId, encryption: ageEngine?.kind ?? 'none' },
      'snapshot exported',
    );
    return { snapshot, tools, zstd, ageEngine, readBack };
  } catch (err) {
    await snapshot.close();
    throw err;
  }
}

/**
 * The snapshot whose connection a cancel ends: the only way to interrupt a running count(*) (a ROLLBACK would queue
 * behind it). Closing it stops listening for the cancel.
 */
function endedOnAbort(snapshot: Snapshot, signal: AbortSignal | undefined): Snapshot {
  if (!signal) return snapshot;
  const end = () => void snapshot.client.end().catch(() => undefined);
  signal.addEventListener('abort', end, { once: true });
  return {
    ...snapshot,
    close() {
      signal.removeEventListener('abort', end);
      return snapshot.close();
    },
  };
}
