import type { Writable } from 'node:stream';
import { execa } from 'execa';
import { IDENTITY_VAR } from '../../crypto/age.ts';
import { ageCliFailed } from '../../crypto/age-cli.ts';
import { BotError } from '../../errors.ts';
import { hashFile } from '../backup/native-pipe.ts';
import { bareEnv } from '../backup/tool-chain.ts';
import { closeWhenGone } from '../child-pipes.ts';
import { describeExit, firstErrorLine } from '../failures.ts';

/**
 * A stored base backup unpacked into `dataDir` with `[age -d -i ID FILE |] zstd -dc | tar -xf -`, each pipe handed
 * from one process to the next, so the cluster's bytes never pass through Node; beside it the stored file is hashed
 * by the native hasher (openssl), the same bytes read again from the page cache on the other core, and compared with
 * the record. Used where the file is local and either not encrypted or decrypted by the age CLI.
 */
export async function unpackNative(o: {
  path: string;
  dataDir: string;
  /** The age CLI and the identity file, for an encrypted base backup. */
  decrypt?: { agePath: string; identityFile: string } | undefined;
  /** Stops the tools (SIGKILL 5 s after SIGTERM); the caller removes what was unpacked. */
  signal?: AbortSignal | undefined;
}): Promise<{ sha256: string }> {
  const stop = { ...(o.signal ? { cancelSignal: o.signal } : {}), forceKillAfterDelay: 5_000 } as const;
  // --ignore-zeros: tar reads to the end of its input instead of stopping at the end-of-archive blocks, so it never
  // exits (closing its stdin) while zstd's last bytes are still on their way: execa would call that a premature close.
  const tar = execa('tar', ['-xf', '-', '--ignore-zeros', '-C', o.dataDir], { stdin: 'pipe', stdout: 'ignore', stderr: 'pipe', reject: false, ...stop });
  const zstdArgs = ['-dc', '-q', ...(o.decrypt ? [] : ['--', o.path])];
  // Without age, zstd reads the file itself and has no stdin.
  const zstd = o.decrypt
    ? execa('zstd', zstdArgs, { ...bareEnv(), stdin: 'pipe', stdout: tar.stdin, stderr: 'pipe', reject: false, ...stop })
    : execa('zstd', zstdArgs, { ...bareEnv(), stdin: 'ignore', stdout: tar.stdin, stderr: 'pipe', reject: false, ...stop });
  closeWhenGone(zstd, tar.stdin);
  const age = o.decrypt && zstd.stdin ? ageDecrypt(o.decrypt, o.path, zstd.stdin, o.signal) : undefined;
  if (age) closeWhenGone(age, zstd.stdin);
  const [a, z, t, sha256] = await Promise.all([age, zstd, tar, hashFile(o.path, o.signal)]);
  if (o.signal?.aborted) return { sha256 };
  if (a?.failed && o.decrypt) throw ageCliFailed('The base backup', a, o.decrypt.identityFile, IDENTITY_VAR);
  if (z.failed) throw new BotError('storage_failed', `The base backup does not decompress: ${firstErrorLine(String(z.stderr)) || describeExit(z)}.`);
  if (t.failed) throw unpackFailure(String(t.stderr), o.dataDir, describeExit(t));
  return { sha256 };
}

/** `age -d -i ID FILE`, its output into `into` (zstd's stdin). */
function ageDecrypt(d: { agePath: string; identityFile: string }, path: string, into: Writable, signal: AbortSignal | undefined) {
  const stop = { ...(signal ? { cancelSignal: signal } : {}), forceKillAfterDelay: 5_000 } as const;
  return execa(d.agePath, ['-d', '-i', d.identityFile, '--', path], { ...bareEnv(), stdin: 'ignore', stdout: into, stderr: 'pipe', reject: false, ...stop });
}

/** tar's failure as a sentence; a full disk it says only as a short write (QA: "Wrote only 8192 of 10240 bytes"). */
export function unpackFailure(stderr: string, dataDir: string, exit: string): BotError {
  const said = firstErrorLine(stderr) || exit;
  if (/No space left on device|Wrote only \d+ of \d+ bytes|Disk quota exceeded/.test(stderr))
    return new BotError(
      'disk_full',
      `The disk under ${dataDir} filled up while the base backup was unpacked (${said}): free space there or choose another --data-dir.`,
    );
  return new BotError('storage_failed', `The base backup does not unpack into ${dataDir}: ${said}.`);
}
