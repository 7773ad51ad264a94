import { readFile } from 'node:fs/promises';
import type { Duplex, Writable } from 'node:stream';
import { execa } from 'execa';
import { bareEnv, childOptions, closeWhenGone, yieldCpu } from '../child-pipes.ts';
import { describeExit } from '../failures.ts';
import { collectOutput } from '../output-tail.ts';
import { type RawTail, spawnTap, tapBytes, tapStderr } from './perl-stages.ts';

export { bareEnv };

/**
 * `<pg tool> | zstd [| age]`: the three processes every backup artifact goes through, chained by file descriptor.
 * What reads the chain's output differs (tool-pipe.ts: Node hashes and writes it; native-pipe.ts: tee and a hasher),
 * so this module spawns the chain and judges its three results, and the readers add their own stages.
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
  /** perl for the native chain's file writer (perl-stages.ts); null: coreutils' tee; when omitted, findPerl(). */
  perl?: string | null | undefined;
  /** The native chain's SHA-256 command; found on PATH when omitted (findNativeTools). */
  hasher?: Hasher | undefined;
  /**
   * Keep the last `bytes` bytes of the tool's raw output (a base backup's manifest, at the end of its tar): the tool
   * writes into the tap (perl-stages.ts: perl, or tee and tail), which hands the stream on to zstd, so the raw bytes still
   * never pass through Node. Not with `rawCounting: 'node'`.
   */
  rawTail?: RawTail | undefined;
}

export interface ToolPipeResult {
  rawBytes: number | null;
  bytes: number;
  sha256: string;
  toolStderr: string;
  /** The raw output's last `rawTailBytes` bytes, when asked for. */
  rawTail?: Buffer;
}

/** How the native chain hashes: the command and its arguments (stdin in, `<64 hex> …` out). */
export interface Hasher {
  command: string;
  args: string[];
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

/**
 * The raw bytes never pass through Node when zstd reads the tool's stdout itself; zstd's read count in /proc (Linux)
 * is a free, close estimate. A late answer must not report 'dumping' after the caller has moved on (`settled`).
 */
export function reportWithRawEstimate(
  o: Pick<ToolPipeOptions, 'onProgress'>,
  zstdPid: number | undefined,
  bytes: () => Promise<number> | number,
  settled: () => boolean,
) {
  void Promise.all([bytes(), readProcRead(zstdPid)]).then(([stored, raw]) => {
    if (!settled()) o.onProgress?.(raw === null ? { bytes: stored } : { bytes: stored, rawBytes: raw });
  });
}

async function readProcRead(pid: number | undefined): Promise<number | null> {
  if (pid === undefined) return null;
  const text = await readFile(`/proc/${pid}/io`, 'utf8').catch(() => '');
  const m = /^rchar:\s*(\d+)/m.exec(text);
  return m ? Number(m[1]) : null;
}

/**
 * Spawns `<tool> | zstd [| age]` from the end of the chain: each one's stdin pipe becomes the stdout of the stage
 * before it, so no byte between them passes through Node. `into`: the stdin of the process that reads the chain
 * (the native chain's tee); without it the last stage's stdout is a pipe for Node to read. `rawThroughNode`: the
 * tool's stdout is a pipe too, which the caller feeds into zstd's stdin (it counts the raw bytes; zstd stays quiet).
 */
export function spawnChain(o: ToolPipeOptions, into: Writable | undefined, rawThroughNode: boolean) {
  const common = childOptions(o.signal);
  const age = o.encryptCommand
    ? yieldCpu(execa(o.encryptCommand.command, o.encryptCommand.args, { ...common, ...bareEnv(), stdin: 'pipe', stdout: into ?? 'pipe', stderr: 'pipe' }))
    : undefined;
  const ageStderr = age ? collectOutput(age.stderr) : undefined;
  const zstdInto = age ? age.stdin : into;
  const zstd = yieldCpu(
    execa(o.zstd, ['-T0', `-${o.level}`, '-c', rawThroughNode ? '-q' : '-vv'], { ...common, stdin: 'pipe', stdout: zstdInto ?? 'pipe', stderr: 'pipe' }),
  );
  const zstdStderr = collectOutput(zstd.stderr);
  const tap = o.rawTail && !rawThroughNode ? spawnTap(o.rawTail, zstd.stdin, common) : undefined;
  // The URL and password live in env (libpq variables + PGPASSFILE), never in args.
  const toolOut = rawThroughNode ? 'pipe' : (tap?.tee.stdin ?? zstd.stdin);
  const tool = yieldCpu(execa(o.command, o.args, { ...common, env: o.env, extendEnv: false, stdin: 'ignore', stdout: toolOut, stderr: 'pipe' }));
  const toolStderr = collectOutput(tool.stderr);
  // Each pipe's writer holds its own copy; ours closes once that writer has exited. When the raw bytes go through
  // Node, the caller's pipeline ends zstd's stdin, unless the tool never started.
  closeWhenGone(tool, tap?.tee.stdin ?? zstd.stdin, rawThroughNode ? ['error'] : ['exit', 'error']);
  if (zstdInto) closeWhenGone(zstd, zstdInto);
  if (age && into) closeWhenGone(age, into);
  return {
    tool,
    zstd,
    age,
    toolStderr,
    zstdStderr,
    ageStderr,
    /** A ToolPipeError for `stage`, carrying the tool's and zstd's stderr. */
    fail: (stage: ToolPipeError['stage'], detail: string, cause?: unknown, exit?: string) =>
      new ToolPipeError(stage, toolStderr.text(), zstdStderr.text(), { detail, cause, ...(exit ? { exit } : {}) }),
    tap,
    kill() {
      for (const c of [tool, zstd, age, tap?.tee, tap?.tail]) c?.kill('SIGTERM');
    },
    /** Every process's result, null for one that never produced one; resolves once all of them have ended. */
    async settle() {
      const [toolRes, zstdRes, ageRes, teeRes, tailRes] = await Promise.allSettled([tool, zstd, age ?? null, tap?.tee ?? null, tap?.tail ?? null]);
      return {
        toolRes,
        zstdRes,
        ageRes,
        teeRes,
        tailRes,
        tool: resultOf(toolRes),
        zstd: resultOf(zstdRes),
        age: resultOf(ageRes),
        tee: resultOf(teeRes),
        tail: resultOf(tailRes),
      };
    },
  };
}

/** The tap's bytes, when the chain has one and it ran to the end. */
export function rawTailOf(r: ChainResults, o: Pick<ToolPipeOptions, 'rawTail'>): { rawTail: Buffer } | Record<string, never> {
  const bytes = o.rawTail ? tapBytes(r.tee, r.tail, !!o.rawTail.perl) : undefined;
  return bytes ? { rawTail: bytes } : {};
}

export type ToolChain = ReturnType<typeof spawnChain>;
type ChainResults = Awaited<ReturnType<ToolChain['settle']>>;

export function resultOf<T>(r: PromiseSettledResult<T | null>): T | null {
  return r.status === 'fulfilled' ? r.value : null;
}

/** Canceled by the caller, or any process of the chain stopped by the cancel signal. */
export function wasCanceled(signal: AbortSignal | undefined, results: ReadonlyArray<{ isCanceled: boolean } | null>): boolean {
  return signal?.aborted === true || results.some((r) => r?.isCanceled === true);
}

/**
 * A write into a reader gone: a pipe's EPIPE, a socket's ECONNRESET (Node's pipes to a child are sockets), or, for a
 * stage whose output is another child's stdin stream, that stream closed under it (execa: ERR_STREAM_PREMATURE_CLOSE).
 */
const BROKEN_PIPE = /broken pipe|connection reset by peer|premature close|\bEPIPE\b|\bECONNRESET\b/i;

/**
 * The failure of the chain's own processes, named in cause order, or undefined when all succeeded. A stage that died
 * of a broken pipe died of what reads it, so what comes after it is asked first: an encryptor that dies takes zstd
 * with it, zstd the tap, the tap the tool. A tool killed by a signal (or a tap) still fails the backup when nothing
 * after it failed, even when zstd exited 0 with a well-formed, truncated stream. `ownZstdFailureFirst`: a zstd that
 * failed of something else is named before a failed encryptor (the Node reader asks for this; the native one names a
 * failed encryptor first in every case).
 */
export function chainFailure(o: ToolPipeOptions, chain: ToolChain, r: ChainResults, ownZstdFailureFirst: boolean): ToolPipeError | undefined {
  const brokePipe = (res: { signal?: string | undefined; shortMessage?: string | undefined } | null, stderr: string) =>
    res?.signal === 'SIGPIPE' || BROKEN_PIPE.test(stderr) || BROKEN_PIPE.test(res?.shortMessage ?? '');
  const toolFailed = !r.tool || r.tool.failed;
  const toolError = () => stageFailed(chain, 'tool', o.command, r.tool, r.toolRes);
  if (toolFailed && !brokePipe(r.tool, chain.toolStderr.text())) return toolError();
  // The tap (perl, or tee and tail) carries the raw stream to zstd: one that failed may have cut it short.
  const teeSaid = tapStderr(r.tee);
  const teeFailed = !!chain.tap && (!r.tee || r.tee.failed);
  const tailFailed = !!chain.tap?.tail && (!r.tail || r.tail.failed);
  const teeError = () => stageFailed(chain, 'tool', o.rawTail?.perl ? 'the raw tap (perl)' : 'tee', r.tee, r.teeRes, teeSaid);
  const tapError = () => (teeFailed && (!tailFailed || !brokePipe(r.tee, teeSaid)) ? teeError() : stageFailed(chain, 'tool', 'tail', r.tail, r.tailRes));
  if (teeFailed && !brokePipe(r.tee, teeSaid)) return teeError();
  if (tailFailed && !teeFailed) return tapError();
  const zstdBrokeOnAge = !r.zstd?.failed || brokePipe(r.zstd, chain.zstdStderr.text());
  if (chain.age && (!r.age || r.age.failed) && (zstdBrokeOnAge || !ownZstdFailureFirst))
    return stageFailed(chain, 'encryptor', o.encryptCommand?.command ?? 'age', r.age, r.ageRes, chain.ageStderr?.text());
  if (!r.zstd || r.zstd.failed) return stageFailed(chain, 'compressor', 'zstd', r.zstd, r.zstdRes);
  if (teeFailed || tailFailed) return tapError();
  if (toolFailed) return toolError();
  return undefined;
}

/**
 * The error for a stage of the chain that failed: `<command> failed (<how it ended>)`, plus the first line it said
 * on stderr when given (the encryptor's), with its result — or, when it never ran, why — as the cause.
 */
function stageFailed(
  chain: ToolChain,
  stage: 'tool' | 'encryptor' | 'compressor',
  command: string,
  result: Parameters<typeof describeExit>[0] | null,
  settled: unknown,
  stderr?: string,
): ToolPipeError {
  const exit = result ? describeExit(result) : 'it did not start';
  const first = stderr?.trim().split('\n')[0] ?? '';
  const said = first ? `: ${first}` : '';
  return chain.fail(stage, `${command} failed (${exit})${said}`, result ?? settled, exit);
}
