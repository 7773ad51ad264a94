import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { execa } from 'execa';
import { BotError } from '../../errors.ts';
import { findNativeTools } from '../backup/native-pipe.ts';
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
}): Promise<{ sha256: string }> {
  const tar = execa('tar', ['-xf', '-', '-C', o.dataDir], { stdin: 'pipe', stdout: 'ignore', stderr: 'pipe', reject: false });
  const zstd = execa('zstd', ['-dc', '-q', ...(o.decrypt ? [] : ['--', o.path])], {
    ...bareEnv(),
    stdin: 'pipe',
    stdout: tar.stdin,
    stderr: 'pipe',
    reject: false,
  });
  closeWhenGone(zstd, tar.stdin);
  const age = o.decrypt
    ? execa(o.decrypt.agePath, ['-d', '-i', o.decrypt.identityFile, '--', o.path], {
        ...bareEnv(),
        stdin: 'ignore',
        stdout: zstd.stdin,
        stderr: 'pipe',
        reject: false,
      })
    : undefined;
  // Ours of zstd's stdin: age holds its own; without age, zstd reads the file and its stdin only needs closing.
  if (age) closeWhenGone(age, zstd.stdin);
  else zstd.stdin.end();
  const [a, z, t, sha256] = await Promise.all([age, zstd, tar, hashFile(o.path)]);
  if (a?.failed) throw new BotError('decryption_failed', `The base backup does not decrypt: ${firstErrorLine(String(a.stderr)) || describeExit(a)}.`);
  if (z.failed) throw new BotError('storage_failed', `The base backup does not decompress: ${firstErrorLine(String(z.stderr)) || describeExit(z)}.`);
  if (t.failed)
    throw new BotError('storage_failed', `The base backup does not unpack into ${o.dataDir}: ${firstErrorLine(String(t.stderr)) || describeExit(t)}.`);
  return { sha256 };
}

/** sha256 of a file: the native hasher where there is one, else Node's. */
async function hashFile(path: string): Promise<string> {
  const hasher = await findNativeTools();
  if (hasher) {
    const r = await execa(hasher.command, [...hasher.args, path], { ...bareEnv(), stdin: 'ignore', reject: false });
    const sha = /^([0-9a-f]{64})\b/.exec(String(r.stdout))?.[1];
    if (!r.failed && sha) return sha;
  }
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
