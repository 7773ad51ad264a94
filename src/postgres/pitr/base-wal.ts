import type { BaseBackup } from './base-backup.ts';
import type { WalEntry } from './wal-store.ts';
import { segmentOf, segmentPosition } from './window.ts';

/**
 * Whether a base backup can be recovered from: the WAL from its start to its end must be in the archive. pg_basebackup
 * ends with a segment switch, so a running stream archives that WAL within seconds; a base backup is only called
 * recoverable once it has.
 *   archived — every segment from start to end is indexed in the archive;
 *   pending  — one is not there yet (the stream is down or behind): it may still come;
 *   lost     — a newer segment is archived but this one is not: it never will be, the base backup is no use.
 */
export type BaseWal = { state: 'archived' } | { state: 'pending' | 'lost'; missing: string };

export async function awaitBaseWal(
  store: { list(): Promise<ReadonlyArray<Pick<WalEntry, 'name'>>> },
  b: Pick<BaseBackup, 'startLsn' | 'endLsn' | 'timeline'>,
  o: { timeoutMs: number; pollMs?: number; signal?: AbortSignal | undefined },
): Promise<BaseWal> {
  const first = segmentPosition(segmentOf(b.startLsn, b.timeline)).n;
  const last = segmentPosition(segmentOf(b.endLsn, b.timeline)).n;
  const deadline = Date.now() + o.timeoutMs;
  for (;;) {
    const have = new Map(
      (await store.list())
        .filter((e) => !e.name.endsWith('.history') && segmentPosition(e.name).timeline === b.timeline)
        .map((e) => [segmentPosition(e.name).n, e.name] as const),
    );
    let missing: number | undefined;
    for (let n = first; n <= last && missing === undefined; n++) if (!have.has(n)) missing = n;
    if (missing === undefined) return { state: 'archived' };
    const m = missing;
    const name = segmentOf(`${Math.floor(m / 0x100).toString(16)}/${((m % 0x100) * 0x1000000).toString(16)}`, b.timeline);
    if ([...have.keys()].some((n) => n > m)) return { state: 'lost', missing: name };
    // Cancelled (the worker is stopping, the demo was interrupted): say what is known now rather than hold the job.
    if (Date.now() >= deadline || o.signal?.aborted) return { state: 'pending', missing: name };
    await new Promise<void>((resolve) => {
      const t = setTimeout(done, o.pollMs ?? 1000);
      function done() {
        clearTimeout(t);
        o.signal?.removeEventListener('abort', done);
        resolve();
      }
      o.signal?.addEventListener('abort', done, { once: true });
    });
  }
}
