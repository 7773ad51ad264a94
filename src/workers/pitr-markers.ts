import type { Queue } from 'bullmq';
import type { Config } from '../config.ts';
import type { RestoreTestJobData } from '../jobs/queues.ts';
import type { Logger } from '../logger.ts';
import { markerProblem, writeMarker } from '../postgres/pitr/markers.ts';
import { removeAbandonedPitrScratch } from './pitr-test-worker.ts';

/** What a starting worker does for PITR restore tests: leftover scratch clusters removed, then the markers started. */
export async function startPitrUpkeep(o: { config: Config; log: Logger; queue: Queue<RestoreTestJobData> }): Promise<{ stop(): Promise<void> }> {
  await removeAbandonedPitrScratch(o.queue, o.config.queuePrefix, o.log.child({ worker: 'restore-test' }));
  return startPitrMarkers(o);
}

/**
 * Exact-point markers for the PITR restore tests: for each target with a `pitr` section and markers on (the default),
 * a row in `pgbb_pitr.markers` on the source every `pitr.markers.everySeconds` (60 by default), written with the
 * target's own connection; rows older than the WAL retention (+1 day) are deleted as it goes. A role that may not
 * create the schema gets one sentence in the log, once until it works again; the tests then say the check did not run.
 */
export function startPitrMarkers(o: { config: Config; log: Logger }): { stop(): Promise<void> } {
  const timers: NodeJS.Timeout[] = [];
  const running = new Set<Promise<unknown>>();
  for (const t of o.config.targets) {
    const markers = t.pitr?.markers;
    if (!t.pitr || !markers) continue;
    const keepDays = t.pitr.walRetentionDays + 1;
    const log = o.log.child({ target: t.name, component: 'pitr-markers' });
    let failing = false;
    const once = () => {
      const p = writeMarker(t.url, keepDays).then(
        () => {
          if (failing) log.info('markers are written again');
          failing = false;
        },
        (err: unknown) => {
          if (!failing) {
            const problem = markerProblem(err, t.name);
            if (problem) log.error(problem);
            else log.warn({ err }, `a marker for ${t.name} could not be written; retrying every ${markers.everySeconds} s`);
          }
          failing = true;
        },
      );
      running.add(p);
      void p.finally(() => running.delete(p));
    };
    once();
    timers.push(setInterval(once, markers.everySeconds * 1000));
  }
  return {
    async stop() {
      for (const t of timers) clearInterval(t);
      await Promise.allSettled([...running]);
    },
  };
}
