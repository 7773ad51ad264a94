import { constants, readdirSync } from 'node:fs';
import { access } from 'node:fs/promises';
import { execa } from 'execa';
import { setPriority } from 'node:os';
import type { Writable } from 'node:stream';

/**
 * What every chain of tools here shares: children stopped by the caller's signal (SIGKILL 5 s after SIGTERM),
 * results instead of thrown errors, and nothing buffered in Node.
 */
export function childOptions(signal: AbortSignal | undefined) {
  return { ...(signal ? { cancelSignal: signal } : {}), forceKillAfterDelay: 5_000, reject: false, buffer: false } as const;
}

/**
 * A pipe handed to a child as its stdout (`stdout: next.stdin`) has two write ends: the child's and ours. Ours must
 * close once the child has gone, or the reader never sees end-of-file. Closing it only after the child's exit
 * keeps execa from reporting that child's stdout as closed early. `on`: which of the child's events close it.
 */
export function closeWhenGone(
  writer: { once(event: 'exit' | 'error', f: () => void): unknown },
  pipe: Writable | null | undefined,
  on: ReadonlyArray<'exit' | 'error'> = ['exit', 'error'],
): void {
  const end = () => setImmediate(() => pipe && !pipe.writableEnded && !pipe.destroyed && pipe.end());
  for (const event of on) writer.once(event, end);
}

/** Niceness of the tools that dump, compress, encrypt, hash and restore (0 is normal, 19 the lowest). */
export const TOOL_NICENESS = 10;

/**
 * Lowers a tool's CPU priority, so the bot's own process comes first on a host the tools keep busy. In `all` mode
 * Slack's requests are answered from the process that runs backups and restores, and Node's spawn() blocks that
 * process's event loop until the new child has exec'd: behind a pipeline at the same priority (pg_dump, zstd on
 * every core, age, openssl) that wait was 30–50 ms per spawn on 2 cores, and a backup spawns a dozen (bench leg K);
 * the acks themselves also got only a share of the CPU. A niced tool loses nothing on an otherwise idle host.
 *
 * Linux keeps a nice value per thread: every thread the tool already has is lowered (zstd -T0 starts some before
 * this runs), and the ones it starts later inherit the value. Best effort: a child that has already exited, or a
 * host that refuses, runs at normal priority. Returns the child, so a call site keeps execa's types.
 */
export function yieldCpu<T extends { pid?: number | undefined }>(child: T): T {
  const { pid } = child;
  if (pid === undefined) return child;
  // A thread the tool was creating while the list was read appears only afterwards, at the old priority: read the
  // list again until it holds no thread not yet lowered (threads made after the main one was lowered inherit it).
  const lowered = new Set<number>();
  for (let pass = 0; pass < 5; pass++) {
    let tasks: number[];
    try {
      tasks = readdirSync(`/proc/${pid}/task`).map(Number);
    } catch {
      tasks = [pid]; // no /proc (not Linux), or gone already
    }
    const fresh = tasks.filter((tid) => !lowered.has(tid));
    if (fresh.length === 0) break;
    for (const tid of fresh) {
      lowered.add(tid);
      try {
        setPriority(tid, TOOL_NICENESS);
      } catch {
        // exited already (ESRCH) or not permitted: that thread runs at normal priority
      }
    }
  }
  return child;
}

/** An environment of PATH only: age, tee, the hasher and the tap need nothing else (read at each spawn, as a test may change it). */
export function bareEnv() {
  return { env: { PATH: process.env.PATH ?? '' }, extendEnv: false } as const;
}

let setpriv: Promise<string | null> | undefined;

/** util-linux's setpriv where it can set a parent-death signal (2.33 and later), found once per process; null without. */
function setprivWithPdeathsig(): Promise<string | null> {
  setpriv ??= (async () => {
    for (const path of ['/usr/bin/setpriv', '/bin/setpriv']) {
      if (
        !(await access(path, constants.X_OK).then(
          () => true,
          () => false,
        ))
      )
        continue;
      const probe = await execa(path, ['--pdeathsig', 'TERM', '--', 'true'], { reject: false, stdin: 'ignore', timeout: 5_000, env: {}, extendEnv: false });
      if (probe.exitCode === 0) return path;
    }
    return null;
  })();
  return setpriv;
}

/**
 * The file and arguments that run `file args` so that it is sent SIGTERM when this process dies without stopping it
 * (kill -9, the OOM killer): a CLI restore killed so used to leave pg_restore loading into a database nobody would
 * use (QA). SIGTERM makes pg_restore cancel its queries and stop its parallel workers; psql and zstd just stop.
 * Through setpriv's parent-death signal, which execs the tool (same pid: signals and niceness reach it as before);
 * unchanged on a host without it.
 */
export async function dyingWithUs(file: string, args: readonly string[]): Promise<[string, string[]]> {
  const wrapper = await setprivWithPdeathsig();
  return wrapper ? [wrapper, ['--pdeathsig', 'TERM', '--', file, ...args]] : [file, [...args]];
}
