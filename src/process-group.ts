/** SIGKILL to a dead child's process group: the tools it had started. Nothing there (ESRCH), or not ours: nothing. */
export function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // no such group: nothing was left
  }
}
