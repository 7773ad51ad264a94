/** SIGKILL to a dead child's process group: the tools it had started. Nothing there (ESRCH), or not ours: nothing. */
export function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // no such group: nothing was left
  }
}

/** Whether a process of this pid runs (ours or another user's); a pid reused since reads as alive: the safe side. */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
