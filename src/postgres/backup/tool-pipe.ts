import { createHash } from 'node:crypto';
import { describeExit } from '../failures.ts';
import { readFile, stat } from 'node:fs/promises';
import { Transform, type Duplex, type Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { execa } from 'execa';
import { childOptions, closeWhenGone, yieldCpu } from '../child-pipes.ts';
import { collectOutput } from '../output-tail.ts';

/**
 * `<pg tool> | zstd [| age] | sha256+count | destination`, streaming with back-pressure; nothing is buffered.
 *
 * By default the tool's stdout is handed to zstd as a file descriptor (zstd is spawned first and its stdin
 * pipe becomes the tool's stdout), so the raw dump never passes through Node; zstd's `-vv` summary gives
 * the raw byte count. `rawCounting: 'node'` routes the raw bytes through a counting Transform instead.
 *
 * Encryption comes after compression and before the hash, so sha256 and bytes describe the file as stored. The
 * age CLI (`encryptCommand`) is chained the same way, by file descriptor (zstd's stdout is age's stdin): Node
 * only reads age's output, exactly as much work as for an unencrypted backup. Passing the compressed stream
 * through Node into a child and back cost about 14 % of a backup's time; in-process encryption (`encrypt`, the
 * age-encryption library) about 35 % (src/crypto/age-cli.ts).
 */

export interface ToolPipeOptions {
  command: string;
  args: string[];
  env: Record<string, string>;
  zstd: string;
  level: number;
  destination: Writable;
  signal?: AbortSignal | undefined;
  rawCounting?: 'zstd' | 'node';
  /** An encrypting command reading stdin and writing stdout (`age -r …`); it gets an environment of PATH only. */
  encryptCommand?: { command: string; args: string[] } | undefined;
  /** An encrypting stream in this process, when there is no command. */
  encrypt?: Duplex | undefined;
  /** Called at most about once a second with the bytes stored so far. */
  onProgress?: ((p: { bytes: number; rawBytes?: number }) => void) | undefined;
  /**
   * The local file `destination` writes (a storage writer's `.partial`): then, unless `encrypt` or node counting
   * is asked for, the stored bytes never pass through Node — `tee` writes the file and `sha256sum` hashes the same
   * bytes, chained by descriptor (runNative). `destination` is only ended, empty, so its writer can commit.
   */
  destinationPath?: string | undefined;
  /** The native chain's SHA-256 command; found on PATH when omitted (findNativeTools). */
  hasher?: Hasher | undefined;
}

export interface ToolPipeResult {
  rawBytes: number | null;
  bytes: number;
  sha256: string;
  toolStderr: string;
}

/** Which stage broke; the caller turns it into a user sentence. */
export class ToolPipeError extends Error {
  /** How the failing process ended, e.g. "exit code 1" or "killed by SIGKILL". */
  readonly exit: string | undefined;
  constructor(
    readonly stage: 'canceled' | 'tool' | 'compressor' | 'encryptor' | 'write',
    readonly toolStderr: string,
    readonly compressorStderr: string,
    options: { cause?: unknown; detail: string; exit?: string },
  ) {
    super(options.detail, { cause: options.cause });
    this.name = 'ToolPipeError';
    this.exit = options.exit;
  }
}

/** Raw byte count from zstd's `-vv` summary: `(12345678 B => 2345 B, …)` (1.5) or `(12345678 => 2345 bytes, …)` (1.4). */
export function parseZstdSummary(stderr: string): number | null {
  const m = /\(\s*(\d+)\s*B?\s*=>\s*\d+\s*(?:B|bytes)\b/.exec(stderr);
  return m ? Number(m[1]) : null;
}

async function readProcRead(pid: number | undefined): Promise<number | null> {
  if (pid === undefined) return null;
  const text = await readFile(`/proc/${pid}/io`, 'utf8').catch(() => '');
  const m = /^rchar:\s*(\d+)/m.exec(text);
  return m ? Number(m[1]) : null;
}

function counter(onChunk: (n: number) => void, hash?: ReturnType<typeof createHash>): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      hash?.update(chunk);
      onChunk(chunk.length);
      done(null, chunk);
    },
  });
}

type FailFn = (stage: ToolPipeError['stage'], detail: string, cause?: unknown, exit?: string) => ToolPipeError;

/**
 * The error for a stage of the chain that failed: `<command> failed (<how it ended>)`, plus the first line it said
 * on stderr when given (the encryptor's), with its result — or, when it never ran, why — as the cause.
 */
function stageFailed(
  fail: FailFn,
  stage: 'tool' | 'encryptor' | 'compressor',
  command: string,
  result: Parameters<typeof describeExit>[0] | null,
  settled: unknown,
  stderr?: string,
): ToolPipeError {
  const exit = result ? describeExit(result) : 'it did not start';
  const said = stderr === undefined ? '' : `: ${stderr.trim().split('\n')[0] ?? ''}`;
  return fail(stage, `${command} failed (${exit})${said}`, result ?? settled, exit);
}

export async function runToolIntoZstd(o: ToolPipeOptions): Promise<ToolPipeResult> {
  const mode = o.rawCounting ?? 'zstd';
  const hasher = o.destinationPath && !o.encrypt && mode === 'zstd' ? (o.hasher ?? (await findNativeTools())) : null;
  if (o.destinationPath && hasher) return runNative(o, o.destinationPath, hasher);
  const common = childOptions(o.signal);
  // Spawned first: its stdin becomes zstd's stdout, as zstd's stdin becomes the tool's.
  const age = o.encryptCommand
    ? yieldCpu(
        execa(o.encryptCommand.command, o.encryptCommand.args, {
          ...common,
          env: { PATH: process.env.PATH ?? '' },
          extendEnv: false,
          stdin: 'pipe',
          stdout: 'pipe',
          stderr: 'pipe',
        }),
      )
    : undefined;
  const ageStderr = age ? collectOutput(age.stderr) : undefined;
  const zstd = yieldCpu(
    execa(o.zstd, ['-T0', `-${o.level}`, '-c', ...(mode === 'zstd' ? ['-vv'] : ['-q'])], {
      ...common,
      stdin: 'pipe',
      stdout: age ? age.stdin : 'pipe',
      stderr: 'pipe',
    }),
  );
  const zstdStderr = collectOutput(zstd.stderr);
  // Our copy of age's stdin must close too once zstd is gone, or age never sees end-of-file.
  if (age) closeWhenGone(zstd, age.stdin);
  // The URL and password live in env (libpq variables + PGPASSFILE), never in args.
  const tool = yieldCpu(
    execa(o.command, o.args, {
      ...common,
      env: o.env,
      extendEnv: false,
      stdin: 'ignore',
      stdout: mode === 'zstd' ? zstd.stdin : 'pipe',
      stderr: 'pipe',
    }),
  );
  const toolStderr = collectOutput(tool.stderr);
  // The tool holds its own copy of zstd's stdin. In 'node' mode the input pipeline ends it, unless the tool never
  // started.
  closeWhenGone(tool, zstd.stdin, mode === 'zstd' ? ['exit', 'error'] : ['error']);

  const hash = createHash('sha256');
  let bytes = 0;
  let rawSeen = 0;
  let lastReport = 0;
  let settled = false;
  const report = () => {
    const now = Date.now();
    if (!o.onProgress || now - lastReport < 1_000) return;
    lastReport = now;
    if (mode === 'node') return o.onProgress({ bytes, rawBytes: rawSeen });
    // The raw bytes never pass through Node; zstd's read count in /proc (Linux) is a free, close estimate.
    void readProcRead(zstd.pid).then((raw) => {
      // A late answer must not report 'dumping' after the caller has moved on.
      if (!settled) o.onProgress?.(raw === null ? { bytes } : { bytes, rawBytes: raw });
    });
  };
  const killAll = () => {
    tool.kill('SIGTERM');
    zstd.kill('SIGTERM');
    age?.kill('SIGTERM');
  };
  // pipeline() destroys every stage with the first error, so each stage emits it: the first emitter is the cause.
  let encryptFailedFirst: boolean | undefined;
  o.encrypt?.once('error', () => (encryptFailedFirst ??= true));
  o.destination.once('error', () => (encryptFailedFirst ??= false));
  // zstd's stdout is a pipe whenever there is no age to hand it to.
  const compressed = (age ? age.stdout : zstd.stdout) as Readable;
  const output = pipeline([
    compressed,
    ...(o.encrypt ? [o.encrypt] : []),
    counter((n) => {
      bytes += n;
      report();
    }, hash),
    o.destination,
  ]).catch((err: unknown) => {
    killAll();
    throw err;
  });
  const input =
    mode === 'node' && tool.stdout
      ? pipeline(
          tool.stdout,
          counter((n) => (rawSeen += n)),
          zstd.stdin,
        ).catch((err: unknown) => {
          killAll();
          throw err;
        })
      : Promise.resolve();
  const [toolRes, zstdRes, outRes, inRes, ageRes] = await Promise.allSettled([tool, zstd, output, input, age ?? Promise.resolve(null)]);
  settled = true;
  const toolResult = toolRes.status === 'fulfilled' ? toolRes.value : null;
  const zstdResult = zstdRes.status === 'fulfilled' ? zstdRes.value : null;
  const ageResult = ageRes.status === 'fulfilled' ? ageRes.value : null;
  const ageFailed = age !== undefined && (!ageResult || ageResult.failed);
  const fail = (stage: ToolPipeError['stage'], detail: string, cause?: unknown, exit?: string) =>
    new ToolPipeError(stage, toolStderr.text(), zstdStderr.text(), { detail, cause, ...(exit ? { exit } : {}) });

  if (o.signal?.aborted || toolResult?.isCanceled || zstdResult?.isCanceled || ageResult?.isCanceled)
    throw fail('canceled', 'canceled by request', o.signal?.reason);
  if (outRes.status === 'rejected' && encryptFailedFirst) throw fail('encryptor', `encrypting the artifact failed: ${String(outRes.reason)}`, outRes.reason);
  // A full disk shows up here first; zstd and the tool then die of a broken pipe, which is not the cause.
  if (outRes.status === 'rejected') throw fail('write', `writing the artifact failed: ${String(outRes.reason)}`, outRes.reason);
  // A tool killed by a signal fails the backup even when zstd exited 0 with a well-formed, truncated stream.
  if (!toolResult || toolResult.failed) throw stageFailed(fail, 'tool', o.command, toolResult, toolRes);
  // An encryptor that dies takes zstd with it (a broken pipe): then the encryptor is the cause.
  if (ageFailed && (!zstdResult?.failed || zstdResult.signal === 'SIGPIPE' || /broken pipe/i.test(zstdStderr.text())))
    throw stageFailed(fail, 'encryptor', o.encryptCommand?.command ?? 'age', ageResult, ageRes, ageStderr?.text());
  if (!zstdResult || zstdResult.failed) throw stageFailed(fail, 'compressor', 'zstd', zstdResult, zstdRes);
  if (inRes.status === 'rejected') throw fail('compressor', `feeding zstd failed: ${String(inRes.reason)}`, inRes.reason);
  const rawBytes = mode === 'node' ? rawSeen : parseZstdSummary(zstdStderr.text());
  return { rawBytes, bytes, sha256: hash.digest('hex'), toolStderr: toolStderr.text() };
}

/** How the native chain hashes: the command and its arguments (stdin in, `<64 hex> …` out). */
export interface Hasher {
  command: string;
  args: string[];
}

let nativeTools: Promise<Hasher | null> | undefined;

/**
 * `tee` plus a SHA-256 command, or null (the node path is used). OpenSSL first: its SHA-256 uses the CPU's SHA
 * extensions, where coreutils' `sha256sum` is plain C: on the bench machine 0.11 against 0.65 CPU-s for a 153 MB
 * artifact, and on 2 cores that CPU comes out of pg_dump's share.
 */
export function findNativeTools(): Promise<Hasher | null> {
  const works = (command: string, args: string[]) => execa(command, args, { reject: false, stdin: 'ignore', timeout: 10_000 }).then((r) => !r.failed);
  nativeTools ??= (async () => {
    if (!(await works('tee', ['--version']))) return null;
    if (await works('openssl', ['dgst', '-sha256', '-r', '/dev/null'])) return { command: 'openssl', args: ['dgst', '-sha256', '-r'] };
    if (await works('sha256sum', ['--version'])) return { command: 'sha256sum', args: ['-b'] };
    return null;
  })();
  return nativeTools;
}

/**
 * `<tool> | zstd [| age] | tee FILE | <sha256>`, every pipe handed from one child to the next as a descriptor:
 * Node reads only the hasher's one line. Measured on a 654 MB database (2 cores): Node's part of a backup — reading
 * zstd's output, hashing it and writing it — was about 0.5 CPU-s beside pg_dump, and the buffers it allocated on
 * the way raised a worker's peak memory by about 50 MiB, waiting for garbage collection.
 */
async function runNative(o: ToolPipeOptions, path: string, hasher: Hasher): Promise<ToolPipeResult> {
  const common = childOptions(o.signal);
  const bare = { env: { PATH: process.env.PATH ?? '' }, extendEnv: false } as const;
  // Spawned from the end of the chain: each one's stdin pipe becomes the stdout of the stage before it.
  const sum = yieldCpu(execa(hasher.command, hasher.args, { ...common, ...bare, stdin: 'pipe', stdout: 'pipe', stderr: 'pipe' }));
  const sumOut = collectOutput(sum.stdout);
  const sumStderr = collectOutput(sum.stderr);
  // tee opens the writer's `.partial` (already created, exclusively and private) and writes it; `--` before a path.
  const tee = yieldCpu(execa('tee', ['--', path], { ...common, ...bare, stdin: 'pipe', stdout: sum.stdin, stderr: 'pipe' }));
  const teeStderr = collectOutput(tee.stderr);
  const age = o.encryptCommand
    ? yieldCpu(execa(o.encryptCommand.command, o.encryptCommand.args, { ...common, ...bare, stdin: 'pipe', stdout: tee.stdin, stderr: 'pipe' }))
    : undefined;
  const ageStderr = age ? collectOutput(age.stderr) : undefined;
  const zstd = yieldCpu(execa(o.zstd, ['-T0', `-${o.level}`, '-c', '-vv'], { ...common, stdin: 'pipe', stdout: age ? age.stdin : tee.stdin, stderr: 'pipe' }));
  const zstdStderr = collectOutput(zstd.stderr);
  // The URL and password live in env (libpq variables + PGPASSFILE), never in args.
  const tool = yieldCpu(execa(o.command, o.args, { ...common, env: o.env, extendEnv: false, stdin: 'ignore', stdout: zstd.stdin, stderr: 'pipe' }));
  const toolStderr = collectOutput(tool.stderr);
  // Each pipe's writer holds its own copy; ours closes once that writer has exited.
  closeWhenGone(tool, zstd.stdin);
  closeWhenGone(zstd, age ? age.stdin : tee.stdin);
  if (age) closeWhenGone(age, tee.stdin);
  closeWhenGone(tee, sum.stdin);
  let settled = false;
  const ticker = setInterval(() => {
    if (!o.onProgress) return;
    void Promise.all([
      stat(path).then(
        (st) => st.size,
        () => 0,
      ),
      readProcRead(zstd.pid),
    ]).then(([bytes, raw]) => {
      if (!settled) o.onProgress?.(raw === null ? { bytes } : { bytes, rawBytes: raw });
    });
  }, 1_000);
  const [toolRes, zstdRes, ageRes, teeRes, sumRes] = await Promise.allSettled([tool, zstd, age ?? Promise.resolve(null), tee, sum]).finally(() => {
    settled = true;
    clearInterval(ticker);
  });
  // The writer's own stream wrote nothing: ended empty, it lets the writer commit (fsync + rename) what tee wrote.
  o.destination.end();
  const ok = <T extends { failed: boolean }>(r: PromiseSettledResult<T | null>) => (r.status === 'fulfilled' ? r.value : null);
  const toolResult = ok(toolRes);
  const zstdResult = ok(zstdRes);
  const ageResult = ok(ageRes);
  const teeResult = ok(teeRes);
  const sumResult = ok(sumRes);
  const fail = (stage: ToolPipeError['stage'], detail: string, cause?: unknown, exit?: string) =>
    new ToolPipeError(stage, toolStderr.text(), zstdStderr.text(), { detail, cause, ...(exit ? { exit } : {}) });
  const killAll = () => {
    for (const c of [tool, zstd, age, tee, sum]) c?.kill('SIGTERM');
  };
  if (o.signal?.aborted || [toolResult, zstdResult, ageResult, teeResult, sumResult].some((r) => r && 'isCanceled' in r && r.isCanceled)) {
    killAll();
    throw fail('canceled', 'canceled by request', o.signal?.reason);
  }
  const sha256 = /^([0-9a-f]{64})\b/.exec(sumOut.text())?.[1];
  const hashFailed = () =>
    fail(
      'write',
      `hashing the artifact failed: ${sumStderr.text().trim().split('\n')[0] || (sumResult ? describeExit(sumResult) : `${hasher.command} did not start`)}`,
    );
  // A hasher that dies takes tee with it (a broken pipe): then the hasher is the cause.
  if (sumResult?.failed && teeResult?.failed && (teeResult.signal === 'SIGPIPE' || /broken pipe/i.test(teeStderr.text()))) throw hashFailed();
  // A full disk shows up in tee first; the stages before it then die of a broken pipe, which is not the cause.
  if (!teeResult || teeResult.failed) {
    const said = teeStderr.text().trim().split('\n')[0] ?? '';
    const cause = /No space left on device/i.test(said) ? Object.assign(new Error(said), { code: 'ENOSPC' }) : new Error(said || 'tee failed');
    throw fail('write', `writing the artifact failed: ${said || (teeResult ? describeExit(teeResult) : 'tee did not start')}`, cause);
  }
  // A tool killed by a signal fails the backup even when zstd exited 0 with a well-formed, truncated stream.
  if (!toolResult || toolResult.failed) throw stageFailed(fail, 'tool', o.command, toolResult, toolRes);
  if (age && (!ageResult || ageResult.failed)) throw stageFailed(fail, 'encryptor', o.encryptCommand?.command ?? 'age', ageResult, ageRes, ageStderr?.text());
  if (!zstdResult || zstdResult.failed) throw stageFailed(fail, 'compressor', 'zstd', zstdResult, zstdRes);
  if (!sumResult || sumResult.failed || !sha256) throw hashFailed();
  return { rawBytes: parseZstdSummary(zstdStderr.text()), bytes: (await stat(path)).size, sha256, toolStderr: toolStderr.text() };
}
