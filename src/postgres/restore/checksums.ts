import { createHash } from 'node:crypto';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BotError } from '../../errors.ts';
import { formatCount } from '../../format.ts';
import type { Manifest } from '../../storage/index.ts';
import type { Storage } from '../../storage/index.ts';

export interface ChecksumResult {
  checksums: Array<{ file: string; ok: boolean }>;
  /** One sentence per artifact that does not match its manifest. */
  problems: string[];
}

const short = (hex: string) => `${hex.slice(0, 12)}…`;

/**
 * Streams every artifact of a backup through sha256 and a byte count and compares both with the manifest. Runs
 * before anything is restored: a bit flipped on the backup disk must fail the test as "corrupted", not surface
 * later as a puzzling pg_restore or zstd error.
 */
export async function verifyChecksums(o: { manifest: Manifest; storage: Storage; signal?: AbortSignal | undefined }): Promise<ChecksumResult> {
  const out: ChecksumResult = { checksums: [], problems: [] };
  for (const a of o.manifest.artifacts) {
    if (o.signal?.aborted) throw new BotError('canceled', 'The restore was canceled while checking the backup’s checksums.');
    let source: Awaited<ReturnType<Storage['openArtifact']>>;
    try {
      source = await o.storage.openArtifact(o.manifest.target, o.manifest.backupId, a.file);
    } catch (err) {
      if (err instanceof BotError && err.code === 'backup_not_found') {
        out.checksums.push({ file: a.file, ok: false });
        out.problems.push(`artifact missing: ${a.file} is not in ${o.storage.describe()}`);
        continue;
      }
      throw err;
    }
    const hash = createHash('sha256');
    let bytes = 0;
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        hash.update(chunk);
        bytes += chunk.length;
        done();
      },
    });
    try {
      await pipeline(source, sink, o.signal ? { signal: o.signal } : {});
    } catch (err) {
      if (o.signal?.aborted) throw new BotError('canceled', 'The restore was canceled while checking the backup’s checksums.', { cause: err });
      throw new BotError('storage_failed', `Reading ${a.file} of backup ${o.manifest.backupId} from ${o.storage.describe()} failed.`, { cause: err });
    }
    const sha256 = hash.digest('hex');
    const ok = bytes === a.bytes && sha256 === a.sha256;
    out.checksums.push({ file: a.file, ok });
    if (bytes !== a.bytes) {
      out.problems.push(`artifact corrupted: ${a.file} (${formatCount(a.bytes)} bytes expected, ${formatCount(bytes)} found)`);
    } else if (sha256 !== a.sha256) {
      out.problems.push(`artifact corrupted: ${a.file} (sha256 ${short(a.sha256)} expected, ${short(sha256)} found)`);
    }
  }
  return out;
}
