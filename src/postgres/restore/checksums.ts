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

/**
 * A restore that does not apply the backup's roles (every one but `--with-globals`: owners and grants come from the
 * server's own roles, or none are restored) never reads the roles file, so damage there stops nothing: it is said
 * beside the verdict. Any other artifact that fails stops the restore. A restore test is not such a restore: it
 * proves the whole backup, so it keeps every problem (restore-test.ts).
 */
export function apartFromRoles(m: Pick<Manifest, 'artifacts'>, sums: ChecksumResult): { fatal: string[]; notes: string[] } {
  if (!onlyRolesFailed(m, sums.checksums)) return { fatal: sums.problems, notes: [] };
  return {
    fatal: [],
    notes: sums.problems.map(
      (p) =>
        `The backup's roles file is damaged (${p}): this restore does not read it (owners and grants come from the server's own roles, or none are restored); a restore onto a new server with --with-globals needs another backup.`,
    ),
  };
}

/** Some checksum failed, and only the roles file's (any artifact but the database archive). */
export function onlyRolesFailed(m: Pick<Manifest, 'artifacts'>, checksums: ReadonlyArray<{ file: string; ok: boolean }>): boolean {
  const roles = new Set(m.artifacts.filter((a) => a.role !== 'database').map((a) => a.file));
  const failed = checksums.filter((c) => !c.ok);
  return failed.length > 0 && failed.every((c) => roles.has(c.file));
}
