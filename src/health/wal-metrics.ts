import { Gauge, type Registry } from 'prom-client';
import type { WalHealthFacts } from './wal-types.ts';

/**
 * The WAL archive's gauges, per point-in-time-recovery target: the recoverable window's ends, the gaps, and the WAL
 * the slot holds on the server against its limit. A figure nobody could read has no series rather than a 0 that
 * would read as "nothing held" or "window in 1970".
 */
export function createWalMetrics(registers: Registry[]) {
  const labelNames = ['target'] as const;
  const gauge = (name: string, help: string) => new Gauge({ name, help, labelNames, registers });
  const start = gauge('pgbb_wal_window_start_timestamp_seconds', 'Start of the recoverable window (point-in-time recovery), Unix seconds');
  const end = gauge('pgbb_wal_window_end_timestamp_seconds', 'End of the recoverable window: the newest WAL recovery can reach, Unix seconds');
  const gaps = gauge('pgbb_wal_gaps', 'Segments missing from the WAL archive between the oldest base backup and the newest segment');
  const retained = gauge('pgbb_wal_slot_retained_bytes', 'WAL the archive’s replication slot holds on the source server, bytes');
  const limit = gauge('pgbb_wal_slot_limit_bytes', 'The slot’s configured limit (pitr.slotMaxBytes), bytes');
  const unlimited = gauge('pgbb_wal_slot_keep_size_unlimited', '1 when the source server sets no max_slot_wal_keep_size (-1), else 0');
  const all = [start, end, gaps, retained, limit, unlimited];
  const setOrRemove = (g: Gauge<'target'>, labels: { target: string }, v: number | null | undefined) =>
    typeof v === 'number' && Number.isFinite(v) ? g.set(labels, v) : g.remove(labels);
  return {
    update(target: string, facts: WalHealthFacts | undefined) {
      const labels = { target };
      if (!facts) {
        for (const g of all) g.remove(labels);
        return;
      }
      const { archive: a, slot: s } = facts;
      const readable = !a.unreadable && !a.notKept;
      setOrRemove(start, labels, a.window ? a.window.from.getTime() / 1000 : null);
      setOrRemove(end, labels, a.window ? a.window.to.getTime() / 1000 : null);
      setOrRemove(gaps, labels, readable ? a.gaps.length : null);
      setOrRemove(retained, labels, s.error ? null : s.retainedBytes);
      limit.set(labels, s.limitBytes);
      setOrRemove(unlimited, labels, s.error || s.keepSizeMb === null || s.keepSizeMb === undefined ? null : s.keepSizeMb === -1 ? 1 : 0);
    },
  };
}
