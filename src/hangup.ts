/**
 * A closed terminal sends SIGHUP, and from then on every write to it fails with EIO and every read ends in an error.
 * Cleaning up after that (the demo's throwaway servers, the CLI's half-written backup) must survive both, and the
 * process must then end as a hung-up process does: killed by SIGHUP. A normal exit is not an option there: Node
 * restores the terminal's settings at exit and aborts on a terminal that has gone (node::ResetStdio, EIO).
 */

/** Whether a read or write failed because the terminal went away. */
export function isHangupError(err: unknown): boolean {
  return (err as NodeJS.ErrnoException | null)?.code === 'EIO';
}

/** Ends the process by SIGHUP with its default action, after the caller has cleaned up. */
export function exitByHangup(): void {
  // Without listeners Node hands SIGHUP back to its default action: the process ends at once, as the shell expects.
  process.removeAllListeners('SIGHUP');
  process.kill(process.pid, 'SIGHUP');
}

/**
 * The reader of stdout or stderr went away (`restore … 2>&1 | head -3`, a pager quit, a `tee` killed): every later
 * write fails with EPIPE, and unhandled that error killed the process mid-restore, leaving its database and the
 * decrypted archive behind. Now `stop` is called once (the verbs abort their work, which cleans up as on Ctrl-C) and
 * later writes are dropped: for every verb, so the demo's and the CLI's clean-up after a hangup (EIO) survive their
 * own writes too. main.ts registers it before any verb runs.
 */
export function onOutputGone(stop: () => void): void {
  let stopped = false;
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (stopped || (err.code !== 'EPIPE' && err.code !== 'EIO')) return;
      stopped = true;
      stop();
    });
  }
}
