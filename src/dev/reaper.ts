import { spawn } from 'node:child_process';

/**
 * What a throwaway server or directory needs done if this process dies without cleaning up (SIGKILL, OOM, a
 * test runner killed by its timeout): a small `sh` of its own session that waits for this process to be gone (or a
 * zombie), then runs `argv`. Without it each killed demo or test run left a PostgreSQL and a redis-server running
 * and files behind (the demo's age identity among them). Cancelled when the owner cleans up itself. `argv` is
 * ours (paths we made, pids), passed as arguments: no shell ever parses it.
 */
const SCRIPT = `owner=$1; shift
while [ -r "/proc/$owner/stat" ] && ! grep -q ') Z ' "/proc/$owner/stat"; do sleep 1; done
exec "$@"`;

export interface Reaper {
  /** The owner cleaned up itself: the reaper is not needed. */
  cancel(): void;
}

export function reapAfterDeath(argv: string[]): Reaper {
  const child = spawn('sh', ['-c', SCRIPT, 'pgbb-reaper', String(process.pid), ...argv], { detached: true, stdio: 'ignore' });
  child.on('error', () => undefined); // no sh: nothing to be done about it, and cleanup still runs normally
  child.unref();
  return {
    cancel() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}
