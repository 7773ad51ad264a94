/**
 * RPO under load, sampled once a second for the load's length. Placeholder until the bot's own RPO measure lands:
 * the end of the newest archived segment against the source's position.
 */
import { LocalWalStore } from '../src/postgres/pitr/wal-store.ts';
import { client } from './dataset.ts';

export async function measureRpo(o: { url: string; backupDir: string; target: string; seconds: number }): Promise<string> {
  const store = new LocalWalStore(o.backupDir, o.target);
  const c = client(o.url);
  await c.connect();
  const samples: Array<{ at: number; lsn: bigint }> = [];
  const rpo: number[] = [];
  const lsn = (s: string) => {
    const [hi, lo] = s.split('/') as [string, string];
    return (BigInt(`0x${hi}`) << 32n) | BigInt(`0x${lo}`);
  };
  try {
    for (let i = 0; i < o.seconds; i++) {
      const r = await c.query('select pg_current_wal_lsn()::text as l');
      const now = Date.now();
      samples.push({ at: now, lsn: lsn(r.rows[0].l) });
      const newest = (await store.list()).filter((e) => !e.name.endsWith('.history')).at(-1);
      const archivedEnd = newest ? (BigInt(`0x${newest.name.slice(8, 16)}`) << 32n) | ((BigInt(`0x${newest.name.slice(16, 24)}`) + 1n) * 0x1000000n) : 0n;
      const oldest = samples.find((s) => s.lsn > archivedEnd);
      rpo.push(oldest ? (now - oldest.at) / 1000 : 0);
      await new Promise((res) => setTimeout(res, 1000));
    }
  } finally {
    await c.end();
  }
  const sorted = [...rpo].sort((a, b) => a - b);
  const q = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0;
  return `p50 ${q(0.5).toFixed(1)} s, p99 ${q(0.99).toFixed(1)} s, max ${(sorted.at(-1) ?? 0).toFixed(1)} s over ${sorted.length} samples`;
}
