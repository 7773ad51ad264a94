import { readFileSync } from 'node:fs';

/** Running: there, and not a zombie waiting for whoever adopted it to reap it (kill(pid, 0) is true for those). */
export function alive(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0] !== 'Z';
  } catch {
    return false;
  }
}
