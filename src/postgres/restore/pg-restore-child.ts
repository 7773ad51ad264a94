import { finished } from 'node:stream/promises';
import { execa } from 'execa';
import { childOptions, dyingWithUs, yieldCpu } from '../child-pipes.ts';
import { describeExit } from '../failures.ts';
import { collectOutput, type OutputTail } from '../output-tail.ts';
import type { OpenArchiveOptions, PgRestoreIo, PgRestoreRun } from './archive.ts';

/** One pg_restore over an opened archive; the archive itself is appended to `args` or fed to stdin by the caller. */
export async function runPgRestore(o: OpenArchiveOptions, args: string[], r: PgRestoreIo & { stdin: 'ignore' | 'pipe' }) {
  // Credentials come from env (libpq variables + PGPASSFILE), never argv.
  const [file, argv] = await dyingWithUs(o.pgRestore, args);
  const child = yieldCpu(
    execa(file, argv, {
      ...childOptions(o.signal),
      env: r.env,
      extendEnv: false,
      stdin: r.stdin,
      stdout: r.captureStdout || r.stdoutTo ? 'pipe' : 'ignore',
      stderr: 'pipe',
      ...(r.captureStdout ? { buffer: { stdout: true, stderr: false } } : {}),
    }),
  );
  const stderr = collectOutput(child.stderr);
  // Not pipeline(): it would end the destination when pg_restore stops, even halfway through a failed run.
  if (r.stdoutTo && child.stdout) {
    child.stdout.pipe(r.stdoutTo, { end: false });
    // The reader went away (psql stopped at an error, maybe before we even started): stop pg_restore rather
    // than let it block forever on a full pipe.
    const out = child.stdout;
    const stop = () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      // Whatever is still buffered is drained into the void, or the stream would never end.
      out.unpipe();
      out.resume();
    };
    if (r.stdoutTo.destroyed || r.stdoutTo.closed) stop();
    else r.stdoutTo.once('close', stop);
  }
  const drained = r.stdoutTo && child.stdout ? finished(child.stdout).catch(() => undefined) : Promise.resolve();
  return { child, stderr, drained };
}

/**
 * The run as the restores read it. Called once the caller has waited for everything it waits for: a cancel that
 * arrives meanwhile still counts.
 */
export function pgRestoreRunOf(
  o: OpenArchiveOptions,
  res: {
    failed: boolean;
    isCanceled: boolean;
    stdout: unknown;
    signal?: string | undefined;
    exitCode?: number | undefined;
    originalMessage?: string | undefined;
  },
  stderr: OutputTail,
): PgRestoreRun {
  const canceled = Boolean(o.signal?.aborted || res.isCanceled);
  return { ok: !res.failed, canceled, stderr: stderr.text(), stdout: String(res.stdout ?? ''), exit: describeExit(res) };
}
