import { rm } from 'node:fs/promises';
import type { Deps } from '../deps.ts';
import type { Workers } from '../workers/index.ts';
import type { EphemeralPostgres, EphemeralRedis } from './ephemeral.ts';
import type { Reaper } from './reaper.ts';

/** What the demo has started so far: cleanup removes whatever is set, also when start-up failed half-way. */
export interface DemoParts {
  pgServer?: EphemeralPostgres;
  redis?: EphemeralRedis;
  backupDir?: string;
  keyDir?: string;
  deps?: Deps;
  workers?: Workers;
  /** Remove the directories even if the demo is killed (SIGKILL) before it can (reaper.ts). */
  reapers: Reaper[];
}

/**
 * Stops what was started (workers before the connections and servers they use), then removes its files. The
 * workers and connections get until `hurry` settles to close; after that the servers are stopped and the files
 * removed regardless: an interrupted demo must never leave a PostgreSQL running or its age identity on disk
 * because a job or a connection did not let go.
 */
export async function removeParts(parts: DemoParts, hurry: Promise<void>): Promise<void> {
  const graceful = (async () => {
    await parts.workers?.close().catch(() => undefined);
    await parts.deps?.close().catch(() => undefined);
  })();
  await Promise.race([graceful, hurry]);
  // PostgreSQL first: it is what must never be left running (pg_ctl's immediate stop takes well under a second).
  await parts.pgServer?.stop().catch(() => undefined);
  await parts.redis?.stop().catch(() => undefined);
  if (parts.backupDir) await rm(parts.backupDir, { recursive: true, force: true });
  if (parts.keyDir) await rm(parts.keyDir, { recursive: true, force: true });
  for (const r of parts.reapers) r.cancel();
}

/** A promise that settles `ms` after `start()` is called (never before); the timer does not keep the process alive. */
export function deadline(ms: number): { start(): void; reached: Promise<void> } {
  let settle: () => void = () => undefined;
  const reached = new Promise<void>((resolve) => (settle = resolve));
  let started = false;
  return {
    start() {
      if (started) return;
      started = true;
      setTimeout(settle, ms).unref();
    },
    reached,
  };
}

/** Scripted runs end when every queued job has finished, so the verdicts are printed before cleanup. */
export async function waitForIdle(deps: Deps, timeoutMs = 10 * 60_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const q = deps.queues;
    const busy = ['active', 'waiting', 'prioritized'] as const;
    // The checklist queue too: a pre-migration checklist is queued by the restore test just as that test finishes.
    const work = [q.backup, q.restoreTest, q.restore, q.checklist, q.retention] as const;
    const counts = await Promise.all([...work.map((queue) => queue.getJobCounts(...busy)), q.pagerduty.getJobCounts('active', 'waiting')]);
    // Every job scheduler keeps its next run delayed (02:00 tomorrow): only delayed jobs of the demo's own count.
    const delayed = await Promise.all(work.map((queue) => queue.getJobs(['delayed'])));
    if (counts.every((c) => Object.values(c).every((n) => n === 0)) && delayed.flat().every((j) => j.repeatJobKey)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
}
