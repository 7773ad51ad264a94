import { chmod, rename, rm, stat } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { execa } from 'execa';
import { ageCliFailed, findAgeEngine } from '../../crypto/age-cli.ts';
import { type AgeIdentity, createDecryptStream, IDENTITY_VAR } from '../../crypto/age.ts';
import { BotError } from '../../errors.ts';
import { bareEnv } from '../backup/tool-chain.ts';
import { closeWhenGone } from '../child-pipes.ts';
import { describeExit, firstErrorLine } from '../failures.ts';
import type { WalEntry } from './wal-store.ts';

/**
 * A stored WAL file whose bytes match their sha256 but do not decompress to the WAL they hold: written wrong, not
 * rotted. Archives written before 38afbe9 on hosts without the age CLI may hold such segments (zstd's first output
 * was lost before the encrypting stream was piped, and the file was hashed as written). Reading it again cannot
 * mend it: the decoding scrub (pitr-scrub.ts) sets it aside, as it does a file that rotted.
 */
export class WalUndecodable extends BotError {
  constructor(what: string, why: string) {
    super('storage_failed', `${what} ${why}`);
  }
}

/** What zstd says of a stream that is not whole: no frame at its start, cut short, a block or checksum that fails. */
const DAMAGED_STREAM = /unsupported format|premature end|unexpected end|truncated|decoding error|corrupt|checksum|unknown frame/i;

/**
 * The bytes of one stored WAL file (already checked against their sha256), decrypted and decompressed to `dest`;
 * with `dest` null (the decoding scrub), decompressed to a count of bytes, nothing written (a full temporary disk
 * must not pass for a segment that does not decompress).
 * With the age CLI installed and the identity in a file, `age -d` decrypts into zstd's stdin: the library's pure-JS
 * ChaCha20 costs about 100 ms of the Node thread per 6 MB segment (measured on 2 cores), the CLI under 20 ms.
 * Throws `decryption_failed` when it does not decrypt (no key, another key), WalUndecodable when what decrypted is
 * not the segment.
 */
export async function decodeWal(
  entry: Pick<WalEntry, 'name' | 'encryption' | 'rawBytes'>,
  stored: Buffer,
  dest: string | null,
  identity: AgeIdentity | undefined,
  signal?: AbortSignal,
): Promise<void> {
  const what = `WAL ${entry.name}`;
  if (entry.encryption === 'age' && !identity) throw new BotError('decryption_failed', `${what} is encrypted: set ${IDENTITY_VAR}.`);
  const engine = entry.encryption === 'age' && identity?.path ? await findAgeEngine() : undefined;
  // zstd writes the 16 MB itself: collecting them through a pipe into a Buffer cost 0.6–0.8 s a segment (measured
  // under load), more than recovery takes to replay one.
  const tmp = dest === null ? null : `${dest}.pgbb`;
  const zstdArgs = tmp ? ['-d', '-q', '-f', '-o', tmp] : ['-d', '-q', '-c'];
  const out = tmp ? ('ignore' as const) : ('pipe' as const);
  let counted = 0;
  // Counted from the moment zstd starts: a stdout not read at once is drained unread (docs/architecture.md).
  const count = (p: { stdout: Readable | null }) =>
    p.stdout?.on('data', (c: Buffer) => {
      counted += c.length;
    });
  type Ran = Parameters<typeof describeExit>[0] & { failed: boolean; stderr: unknown; exitCode?: number | undefined; signal?: string | undefined };
  let z: Ran;
  // `signal` (restore-pitr canceled while it reads the newest commit) stops the tools.
  const stop = { ...(signal ? { cancelSignal: signal } : {}), forceKillAfterDelay: 5_000 } as const;
  if (engine?.kind === 'cli' && identity?.path) {
    const zstd = execa('zstd', zstdArgs, { ...bareEnv(), stdin: 'pipe', stdout: out, buffer: { stdout: false }, stderr: 'pipe', reject: false, ...stop });
    count(zstd);
    const age = execa(engine.path, ['-d', '-i', identity.path], { ...bareEnv(), input: stored, stdout: zstd.stdin, stderr: 'pipe', reject: false, ...stop });
    closeWhenGone(age, zstd.stdin);
    const [a, zr] = await Promise.all([age, zstd]);
    if (a.failed) {
      if (tmp) await rm(tmp, { force: true });
      throw ageCliFailed(what, a, identity.path, IDENTITY_VAR);
    }
    z = zr;
  } else {
    const compressed = entry.encryption === 'none' || !identity ? stored : await buffer(await createDecryptStream(Readable.from(stored), identity, []));
    const zstd = execa('zstd', zstdArgs, { input: compressed, stdout: out, buffer: { stdout: false }, reject: false, ...stop });
    count(zstd);
    z = await zstd;
  }
  const gone = () => (tmp ? rm(tmp, { force: true }) : Promise.resolve());
  if (signal?.aborted) {
    await gone();
    throw new BotError('canceled', `Fetching ${what} was canceled.`);
  }
  if (z.failed) {
    await gone();
    const said = firstErrorLine(String(z.stderr ?? '')) || describeExit(z);
    // Only zstd's own verdict on the bytes is damage; a zstd that did not start, was killed or ran out of memory
    // says nothing about them (second reader: without zstd on PATH, a scrub set every segment it read aside).
    if (typeof z.exitCode === 'number' && !z.signal && DAMAGED_STREAM.test(said) && !/memory|allocat/i.test(said))
      throw new WalUndecodable(what, `does not decompress: ${said}.`);
    throw new BotError('storage_failed', `${what} could not be decompressed here: zstd ${said}.`);
  }
  const size = tmp ? (await stat(tmp)).size : counted;
  if (size !== entry.rawBytes) {
    await gone();
    throw new WalUndecodable(what, `decompressed to ${size} bytes, not ${entry.rawBytes}.`);
  }
  if (!tmp || !dest) return;
  await chmod(tmp, 0o600);
  await rename(tmp, dest);
}
