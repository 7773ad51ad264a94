import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { execa } from 'execa';
import { childOptions, yieldCpu } from '../child-pipes.ts';
import { describeExit } from '../failures.ts';
import { collectOutput } from '../output-tail.ts';
import { findPerl, spawnFileTee } from './perl-stages.ts';
import {
  bareEnv,
  chainFailure,
  parseZstdSummary,
  rawTailOf,
  reportWithRawEstimate,
  resultOf,
  spawnChain,
  wasCanceled,
  type Hasher,
  type ToolPipeOptions,
  type ToolPipeResult,
} from './tool-chain.ts';

let nativeTools: Promise<Hasher | null> | undefined;

/**
 * `tee` plus a SHA-256 command, or null (the node path is used). OpenSSL first: its SHA-256 uses the CPU's SHA
 * extensions, where coreutils' `sha256sum` is plain C: on the bench machine 0.11 against 0.65 CPU-s for a 153 MB
 * artifact, and on 2 cores that CPU comes out of pg_dump's share.
 */
export function findNativeTools(): Promise<Hasher | null> {
  const works = (command: string, args: string[]) => execa(command, args, { reject: false, stdin: 'ignore', timeout: 10_000 }).then((r) => !r.failed);
  nativeTools ??= (async () => {
    // tee and openssl asked at once (each answer is a process start); sha256sum only where openssl is missing.
    // perl (the writer's, perl-stages.ts) asked beside them, so no backup waits for that answer later.
    const [tee, openssl] = await Promise.all([works('tee', ['--version']), works('openssl', ['dgst', '-sha256', '-r', '/dev/null']), findPerl()]);
    if (!tee) return null;
    if (openssl) return { command: 'openssl', args: ['dgst', '-sha256', '-r'] };
    if (await works('sha256sum', ['--version'])) return { command: 'sha256sum', args: ['-b'] };
    return null;
  })();
  return nativeTools;
}

/**
 * `<tool> | zstd [| age] | tee FILE | <sha256>` (tee: perl's, perl-stages.ts, or coreutils'), every pipe handed from one child to the next as a descriptor:
 * Node reads only the hasher's one line. Measured on a 654 MB database (2 cores): Node's part of a backup — reading
 * zstd's output, hashing it and writing it — was about 0.5 CPU-s beside pg_dump, and the buffers it allocated on
 * the way raised a worker's peak memory by about 50 MiB, waiting for garbage collection.
 */
export async function runNative(o: ToolPipeOptions, path: string, hasher: Hasher): Promise<ToolPipeResult> {
  const common = childOptions(o.signal);
  const perl = o.perl === undefined ? await findPerl() : o.perl;
  // Spawned from the end of the chain, like the chain itself: each one's stdin pipe is the stdout of the one before.
  const sum = yieldCpu(execa(hasher.command, hasher.args, { ...common, ...bareEnv(), stdin: 'pipe', stdout: 'pipe', stderr: 'pipe' }));
  const sumOut = collectOutput(sum.stdout);
  const sumStderr = collectOutput(sum.stderr);
  // The writer (perl, or tee: perl-stages.ts) opens the `.partial` (already created, exclusively and private) and writes it.
  const tee = spawnFileTee(perl, path, sum.stdin, common);
  const teeStderr = collectOutput(tee.stderr);
  const chain = spawnChain(o, tee.stdin, false);
  let settled = false;
  const storedSize = () =>
    stat(path).then(
      (st) => st.size,
      () => 0,
    );
  const ticker = setInterval(() => o.onProgress && reportWithRawEstimate(o, chain.zstd.pid, storedSize, () => settled), 1_000);
  const [r, [teeRes, sumRes]] = await Promise.all([chain.settle(), Promise.allSettled([tee, sum])]).finally(() => {
    settled = true;
    clearInterval(ticker);
  });
  // The writer's own stream wrote nothing: ended empty, it lets the writer commit (fsync + rename) what tee wrote.
  o.destination.end();
  const teeResult = resultOf(teeRes);
  const sumResult = resultOf(sumRes);
  if (wasCanceled(o.signal, [r.tool, r.zstd, r.age, teeResult, sumResult])) {
    chain.kill();
    tee.kill('SIGTERM');
    sum.kill('SIGTERM');
    throw chain.fail('canceled', 'canceled by request', o.signal?.reason);
  }
  const sha256 = /^([0-9a-f]{64})\b/.exec(sumOut.text())?.[1];
  const hashFailed = () =>
    chain.fail(
      'write',
      `hashing the artifact failed: ${sumStderr.text().trim().split('\n')[0] || (sumResult ? describeExit(sumResult) : `${hasher.command} did not start`)}`,
    );
  // A hasher that dies takes tee with it (a broken pipe, or under load the pipe between them erroring while tee itself
  // exits 0: seen in CI as "writing the artifact failed: exit code 0"): then the hasher is the cause, unless tee said
  // the disk is full.
  if (sumResult?.failed && teeResult?.failed && !/No space left on device/i.test(teeStderr.text())) throw hashFailed();
  // A full disk shows up in tee first; the stages before it then die of a broken pipe, which is not the cause.
  if (!teeResult || teeResult.failed) {
    const said = teeStderr.text().trim().split('\n')[0] ?? '';
    const cause = /No space left on device/i.test(said) ? Object.assign(new Error(said), { code: 'ENOSPC' }) : new Error(said || 'tee failed');
    throw chain.fail(
      'write',
      `writing the artifact failed: ${said || (teeResult ? describeExit(teeResult) : `${perl ? 'perl' : 'tee'} did not start`)}`,
      cause,
    );
  }
  const failed = chainFailure(o, chain, r, false);
  if (failed) throw failed;
  if (!sumResult || sumResult.failed || !sha256) throw hashFailed();
  return {
    rawBytes: parseZstdSummary(chain.zstdStderr.text()),
    bytes: (await stat(path)).size,
    sha256,
    toolStderr: chain.toolStderr.text(),
    ...rawTailOf(r, o),
  };
}

/** sha256 of a file: the native hasher where there is one (several times less CPU), else Node's; '' when `signal` stopped it. */
export async function hashFile(path: string, signal?: AbortSignal): Promise<string> {
  const hasher = await findNativeTools();
  if (hasher) {
    const stop = signal ? { cancelSignal: signal } : {};
    const r = await execa(hasher.command, [...hasher.args, path], { ...bareEnv(), stdin: 'ignore', reject: false, ...stop });
    if (signal?.aborted) return '';
    const sha = /^([0-9a-f]{64})\b/.exec(String(r.stdout))?.[1];
    if (!r.failed && sha) return sha;
  }
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { signal })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
