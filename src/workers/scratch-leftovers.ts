import type { Deps } from '../deps.ts';
import { cliScratchDatabases } from '../jobs/cli-readers.ts';
import { dropLeftoverScratchDatabases } from '../postgres/restore/index.ts';
import { scratchDatabaseFor } from './restore-test-worker.ts';
import { scratchServerUrl } from './restore-test-settings.ts';

/**
 * Scratch databases left by a crashed restore test are dropped when a worker starts — except those of restore
 * tests still running on other workers (their names derive from their job ids).
 */
export async function dropLeftovers(deps: Deps): Promise<void> {
  const active = await deps.queues.restoreTest.getJobs(['active']);
  // And the CLI's restore tests running now, which hold their scratch database in Redis.
  const cli = await cliScratchDatabases({ redis: deps.workerRedis, prefix: deps.config.queuePrefix });
  const keep = new Set([...active.map((j) => scratchDatabaseFor(j.id ?? '', deps.config.queuePrefix)), ...cli]);
  const servers = new Set(deps.config.targets.map((t) => scratchServerUrl(deps.config, t.url)));
  for (const server of servers) {
    try {
      const dropped = await dropLeftoverScratchDatabases(server, keep, deps.config.queuePrefix);
      if (dropped.length > 0) deps.log.warn({ dropped }, 'dropped scratch databases left behind by an interrupted restore test');
    } catch (err) {
      deps.log.warn({ err }, 'could not look for leftover scratch databases');
    }
  }
}
