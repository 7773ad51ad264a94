import type { Logger } from '../../logger.ts';
import type { Manifest } from '../../storage/index.ts';
import type { Storage } from '../../storage/index.ts';
import { UnreadableArchive } from './archive.ts';
import { cleanBaseEnv } from '../connection.ts';
import { identityFor } from './decryption.ts';
import { firstErrorLine, tocEntryCount } from '../failures.ts';
import { openArchive } from './open-archive.ts';
import { restoreTools } from './stored-archive.ts';

export interface ListOutcome {
  ok: boolean;
  /** Entries in the archive's table of contents (0 when it could not be read). */
  tocEntries: number;
  ms: number;
  /** Why the archive could not be listed, in one line. */
  problem: string | null;
}

/**
 * `[age -d |] zstd -dc | pg_restore --list` of a stored backup, the read-back check a backup gets when it is made,
 * run again later (the weekly checklist): the archive as stored still decrypts, decompresses and has a readable
 * table of contents. pg_restore stops after the TOC, so this reads the front of the file only; no connection.
 */
export async function listStoredBackup(o: {
  manifest: Manifest;
  storage: Storage;
  pgBinDir?: string | undefined;
  identityFile?: string | undefined;
  signal?: AbortSignal | undefined;
  log: Logger;
}): Promise<ListOutcome> {
  const started = Date.now();
  const fail = (problem: string): ListOutcome => ({ ok: false, tocEntries: 0, ms: Date.now() - started, problem });
  const identity = await identityFor(o.manifest, o.identityFile);
  const tools = await restoreTools({ manifest: o.manifest, pgBinDir: o.pgBinDir });
  let archive: Awaited<ReturnType<typeof openArchive>> | undefined;
  try {
    archive = await openArchive({
      manifest: o.manifest,
      storage: o.storage,
      zstd: tools.zstd,
      pgRestore: tools.pgRestore,
      input: 'stream',
      signal: o.signal,
      identity,
      log: o.log,
    });
    const run = await archive.pgRestore(['--list'], { env: cleanBaseEnv(), captureStdout: true, partialRead: true });
    if (!run.ok) return fail(`pg_restore --list failed (${run.exit}): ${firstErrorLine(run.stderr) || 'no error message'}`);
    const tocEntries = tocEntryCount(run.stdout);
    if (tocEntries === 0) return fail('the archive lists no entries');
    return { ok: true, tocEntries, ms: Date.now() - started, problem: null };
  } catch (err) {
    if (err instanceof UnreadableArchive) return fail(err.problem);
    throw err;
  } finally {
    await archive?.close();
  }
}
