import { open, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';

export interface ProcPeak {
  pid: number;
  name: string;
  /** VmHWM in KiB: the kernel's own high-water mark of resident memory. */
  hwmKb: number;
}

/**
 * Polls /proc/<pid>/status every 50 ms. VmHWM is a high-water mark kept by the kernel, so polling only has to
 * see the process once shortly before it exits, not catch the peak itself. With `descendants`, children
 * spawned by a watched process (the CLI's pg_dump and zstd) are found by their parent pid in /proc/<n>/stat;
 * this kernel has no /proc/<pid>/task/<tid>/children. That scan reads every process's stat, so it runs every
 * 250 ms only, while the processes already found are sampled every 50 ms: scanning all of /proc every 50 ms cost
 * about 1.5 s of CPU per CLI leg on 2 cores and slowed the very leg it watched by about half a second.
 */
export class RssWatcher {
  private readonly peaks = new Map<number, ProcPeak>();
  private readonly roots = new Set<number>();
  private readonly found = new Set<number>();
  private timer: NodeJS.Timeout | undefined;
  private busy = false;
  private ticks = 0;

  constructor(private readonly descendants = false) {}

  watch(pid: number | undefined): void {
    if (pid !== undefined) this.roots.add(pid);
  }

  start(): this {
    this.timer = setInterval(() => void this.poll(), 50);
    return this;
  }

  async stop(): Promise<ProcPeak[]> {
    clearInterval(this.timer);
    while (this.busy) await new Promise((r) => setTimeout(r, 5));
    await this.poll(true);
    return [...this.peaks.values()];
  }

  peakOf(pid: number | undefined): number | undefined {
    return pid === undefined ? undefined : this.peaks.get(pid)?.hwmKb;
  }

  private async poll(rescan = false): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      // A new root is scanned for at once: the first scan finds what it has started meanwhile.
      if (this.descendants && (rescan || this.ticks++ % 5 === 0 || [...this.roots].some((r) => !this.found.has(r)))) {
        for (const pid of await this.tree()) this.found.add(pid);
      }
      const pids = new Set([...this.roots, ...this.found]);
      await Promise.all([...pids].map((pid) => this.sample(pid)));
    } finally {
      this.busy = false;
    }
  }

  private async sample(pid: number): Promise<void> {
    const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
    const hwm = /^VmHWM:\s+(\d+) kB/m.exec(status)?.[1];
    const name = /^Name:\s+(.*)$/m.exec(status)?.[1];
    if (hwm === undefined || name === undefined) {
      this.found.delete(pid); // gone, or a zombie (no memory left to report)
      return;
    }
    const prev = this.peaks.get(pid);
    if (!prev || Number(hwm) > prev.hwmKb) this.peaks.set(pid, { pid, name, hwmKb: Number(hwm) });
  }

  private async tree(): Promise<number[]> {
    const children = new Map<number, number[]>();
    for (const entry of await readdir('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
      // "pid (comm) state ppid …": comm may hold spaces and parentheses, so parse after the last ')'.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (!Number.isNaN(ppid)) children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
    }
    const out: number[] = [];
    const queue = [...this.roots];
    for (let pid = queue.shift(); pid !== undefined; pid = queue.shift()) {
      out.push(pid);
      queue.push(...(children.get(pid) ?? []));
    }
    return out;
  }
}

/** Every regular file under `dir`, recursively. */
export async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}

/**
 * Flushes outputs to disk inside the timed region: pg_dump -f fsyncs its file but gzip and zstd do not, so
 * without this the legs would be compared at different points ("in the page cache" vs "on disk").
 */
export async function fsyncAll(files: string[]): Promise<void> {
  for (const file of files) {
    const fh = await open(file, 'r');
    await fh.sync().finally(() => fh.close());
  }
}

export async function totalBytes(files: string[]): Promise<number> {
  let sum = 0;
  for (const file of files) sum += (await stat(file)).size;
  return sum;
}

/**
 * Cold-ish start for every leg: write dirty pages back, then drop the page cache so each leg reads the
 * database (and the CLI its node_modules) from disk alike. Needs root; returns false where not permitted.
 */
export async function dropCaches(): Promise<boolean> {
  await execa('sync');
  try {
    await writeFile('/proc/sys/vm/drop_caches', '3\n');
    return true;
  } catch {
    return false;
  }
}

export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] ?? NaN) : ((s[mid - 1] ?? NaN) + (s[mid] ?? NaN)) / 2;
}

/**
 * CPU time the whole machine spent busy (user + nice + system + irq + softirq + steal; not idle, not iowait),
 * in seconds, from /proc/stat: a leg's cost includes the server backend, zstd and everything else it starts,
 * which a per-process figure would miss. null off Linux.
 */
export async function machineCpuSeconds(): Promise<number | null> {
  try {
    const line = (await readFile('/proc/stat', 'utf8')).split('\n').find((l) => l.startsWith('cpu '));
    const f = (line ?? '').trim().split(/\s+/).slice(1).map(Number);
    const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = f;
    // USER_HZ is 100 on every Linux this runs on.
    return (user + nice + system + irq + softirq + steal) / 100;
  } catch {
    return null;
  }
}
