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
export function closeWhenGone(writer: { once(event: 'exit' | 'error', f: () => void): unknown }, pipe: Writable | null | undefined, on: ReadonlyArray<'exit' | 'error'> = ['exit', 'error']): void {
  const end = () => setImmediate(() => pipe && !pipe.writableEnded && !pipe.destroyed && pipe.end());
  for (const event of on) writer.once(event, end);
}
