import { readdir, readFile, readlink } from 'node:fs/promises';

/**
 * How far into `file` a pg_restore has read: the largest offset among the descriptors that it and its children
 * (the `-j` workers, which reopen the archive and seek to their block) hold open on the file. Read from Linux's
 * /proc (fdinfo's `pos:`); 0 where there is none, so progress then goes without the archive figure. stdio
 * buffering puts the offset at most one buffer ahead of what was handed to the server.
 */
export async function furthestOffset(pid: number, file: string): Promise<number> {
  let furthest = 0;
  for (const p of await processTree(pid)) {
    let fds: string[];
    try {
      fds = await readdir(`/proc/${p}/fd`);
    } catch {
      continue; // exited meanwhile, or no /proc
    }
    for (const fd of fds) {
      const pos = await offsetOn(p, fd, file);
      if (pos > furthest) furthest = pos;
    }
  }
  return furthest;
}

async function offsetOn(pid: number, fd: string, file: string): Promise<number> {
  try {
    if ((await readlink(`/proc/${pid}/fd/${fd}`)) !== file) return 0;
    const pos = /^pos:\s+(\d+)/m.exec(await readFile(`/proc/${pid}/fdinfo/${fd}`, 'utf8'));
    return pos ? Number(pos[1]) : 0;
  } catch {
    return 0; // closed between the listing and the read
  }
}

/** The process and its descendants, from /proc/<pid>/task/<pid>/children. */
async function processTree(pid: number): Promise<number[]> {
  const all = [pid];
  for (let i = 0; i < all.length; i++) {
    const p = all[i] as number;
    try {
      const kids = await readFile(`/proc/${p}/task/${p}/children`, 'utf8');
      for (const k of kids.split(/\s+/)) if (k) all.push(Number(k));
    } catch {
      // gone, or a kernel without the children file: the process itself still counts
    }
  }
  return all;
}
