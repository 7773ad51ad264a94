import { once } from 'node:events';
import { ReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { execa } from 'execa';
import { findAgeEngine } from '../../crypto/age-cli.ts';
import { BotError } from '../../errors.ts';
import type { Artifact } from '../../storage/index.ts';
import { childOptions, closeWhenGone, yieldCpu } from '../child-pipes.ts';
import { describeExit, firstErrorLine } from '../failures.ts';
import { collectOutput } from '../output-tail.ts';
import { databaseArtifact, decryptionMessage, type OpenArchiveOptions, UnreadableArchive } from './archive.ts';
import { plaintextOf } from './decryption.ts';

/** Who reads the stored artifact: the first tool, by its path, or node, which feeds it to that tool. */
interface Route {
  /** The local file behind the stored artifact; null when storage hands out a node stream (S3). */
  storedPath: string | null;
  /** The age CLI that decrypts; null when nothing is encrypted, or the library decrypts. */
  ageCmd: { path: string; identityFile: string } | null;
  toolReadsFile: boolean;
}

/**
 * `[age -d |] zstd -dc > file` with the file's descriptor handed to zstd as its stdout, and a local unencrypted
 * artifact named to zstd directly: the decompressed bytes never pass through node (they did before, and cost
 * about as much time as zstd itself). Only a decrypted or remote (S3) artifact is fed through node.
 */
export async function decompressToFile(o: OpenArchiveOptions, file: string, tempRoot: string): Promise<void> {
  const a = databaseArtifact(o.manifest);
  const stored = await o.storage.openArtifact(o.manifest.target, o.manifest.backupId, a.file);
  const route = await routeFor(o, a, stored);
  let out: WriteStream | undefined;
  let source: Readable | undefined;
  try {
    // wx: never follow a planted file; 0600 inside the 0700 mkdtemp directory. Once open, spawn() hands zstd
    // the stream's descriptor itself (a stream with an fd is shared with the child, not piped through node).
    out = createWriteStream(file, { flags: 'wx', mode: 0o600 });
    await opened(out, tempRoot);
    if (route.toolReadsFile) stored.destroy();
    // The library decrypts in node; a wrong or missing identity fails here, before zstd starts.
    else source = route.ageCmd ? stored : await plaintextOf(o.manifest, a, stored, o.identity);
    const tools = startTools(o, route, out);
    let decryptError: unknown;
    if (source && source !== stored) source.once('error', (err) => (decryptError ??= err));
    const sink = tools.age ? tools.age.stdin : tools.zstd.stdin;
    const feed = source && sink ? pipeline(source, sink).catch(() => undefined) : Promise.resolve();
    const [z, ageResult] = await Promise.all([tools.zstd, tools.age, feed]);
    if (o.signal?.aborted) throw new BotError('canceled', 'The restore was canceled while decompressing the backup.');
    judge(tempRoot, { zstd: z, zstdErr: tools.zstdErr.text(), age: ageResult, ageErr: tools.ageErr?.text() ?? '', decryptError });
  } finally {
    source?.destroy();
    stored.destroy();
    if (out && !out.closed) {
      const closed = once(out, 'close').catch(() => undefined);
      out.destroy();
      await closed;
    }
  }
}

async function routeFor(o: OpenArchiveOptions, a: Artifact, stored: Readable): Promise<Route> {
  // A local file is named to the first tool, which reads it itself; S3 objects arrive as a node stream.
  const storedPath = stored instanceof ReadStream && typeof stored.path === 'string' ? resolve(stored.path) : null;
  // An encrypted artifact goes through the age CLI when it is installed and the identity is a file: the library
  // decrypts at about 100 MB/s on the node thread, the CLI an order of magnitude faster beside it.
  const identityFile = a.encryption ? o.identity?.path : undefined;
  const ageCli = identityFile ? await findAgeEngine(o.agePath) : undefined;
  const ageCmd = ageCli?.kind === 'cli' && identityFile ? { path: ageCli.path, identityFile } : null;
  return { storedPath, ageCmd, toolReadsFile: storedPath !== null && (!a.encryption || ageCmd !== null) };
}

async function opened(out: WriteStream, tempRoot: string): Promise<void> {
  await once(out, 'open').catch((err: unknown) => {
    const code = (err as NodeJS.ErrnoException).code;
    throw new BotError(code === 'ENOSPC' ? 'disk_full' : 'storage_failed', `Could not create the decompressed backup in ${tempRoot} (${code ?? 'error'}).`, {
      cause: err,
    });
  });
}

/** zstd writing into `out`, and in front of it `age -d` when the CLI decrypts. */
function startTools(o: OpenArchiveOptions, route: Route, out: WriteStream) {
  const { storedPath, ageCmd, toolReadsFile } = route;
  const zstdReadsFile = toolReadsFile && !ageCmd;
  const zstd = yieldCpu(
    execa(o.zstd, zstdReadsFile && storedPath ? ['-dc', '-q', '--', storedPath] : ['-dc', '-q'], {
      ...childOptions(o.signal),
      stdin: zstdReadsFile ? 'ignore' : 'pipe',
      stdout: out,
      stderr: 'pipe',
    }),
  );
  const zstdErr = collectOutput(zstd.stderr);
  // `age -d -i FILE [INPUT]` writes straight into zstd's stdin (its descriptor handed over, as in backup/tool-chain.ts).
  // The identity file's path is no secret; its contents never leave the file. No environment of ours reaches age.
  const age =
    ageCmd && zstd.stdin
      ? yieldCpu(
          execa(ageCmd.path, ['-d', '-i', resolve(ageCmd.identityFile), ...(toolReadsFile && storedPath ? [storedPath] : [])], {
            ...childOptions(o.signal),
            env: { PATH: process.env.PATH ?? '' },
            extendEnv: false,
            stdin: toolReadsFile ? 'ignore' : 'pipe',
            stdout: zstd.stdin,
            stderr: 'pipe',
          }),
        )
      : undefined;
  const ageErr = age ? collectOutput(age.stderr) : undefined;
  // age holds its own copy of zstd's stdin; ours must close too, or zstd never sees end-of-file.
  if (age) closeWhenGone(age, zstd.stdin);
  return { zstd, zstdErr, age, ageErr };
}

type Exit = { failed: boolean; signal?: string | undefined; exitCode?: number | undefined; originalMessage?: string | undefined };

/**
 * The finished chain's verdict, the most specific cause first: a full temp dir (zstd's write error would otherwise
 * read as a bad backup), then age, then the library's decryption, then zstd itself.
 */
function judge(tempRoot: string, r: { zstd: Exit; zstdErr: string; age: Exit | undefined; ageErr: string; decryptError: unknown }): void {
  if (/No space left on device/i.test(r.zstdErr)) {
    throw new BotError('disk_full', `The temp directory ${tempRoot} filled up while decompressing the backup; free space there or set another temp directory.`);
  }
  if (r.age?.failed) {
    throw new UnreadableArchive(
      `the database artifact does not decrypt: ${firstErrorLine(r.ageErr).replace(/^age:\s*(error:\s*)?/, '') || describeExit(r.age)}`,
    );
  }
  if (r.decryptError !== undefined) throw new UnreadableArchive(`the database artifact does not decrypt: ${decryptionMessage(r.decryptError)}`);
  if (r.zstd.failed) {
    if (/write error|cannot open|permission denied/i.test(r.zstdErr)) {
      throw new BotError('storage_failed', `Could not write the decompressed backup to ${tempRoot}: ${firstErrorLine(r.zstdErr) || describeExit(r.zstd)}.`);
    }
    throw new UnreadableArchive(`the database artifact does not decompress: ${firstErrorLine(r.zstdErr) || describeExit(r.zstd)}`);
  }
}
