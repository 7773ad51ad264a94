/**
 * RPO under load as the bot measures it: the readings the archiver process (bench/pitr-archiver.ts, the worker's
 * own RpoMonitor) prints, one JSON line each, collected while the load runs.
 */
import type { Readable } from 'node:stream';

export function collectRpo(stdout: Readable): { since(t: number): number[] } {
  const readings: Array<{ t: number; rpoMs: number }> = [];
  let rest = '';
  stdout.on('data', (chunk: Buffer) => {
    const lines = (rest + chunk.toString('utf8')).split('\n');
    rest = lines.pop() ?? '';
    for (const line of lines) {
      if (!line.startsWith('{')) continue;
      const r = JSON.parse(line) as { rpoMs?: number };
      if (typeof r.rpoMs === 'number') readings.push({ t: Date.now(), rpoMs: r.rpoMs });
    }
  });
  return { since: (t) => readings.filter((r) => r.t >= t).map((r) => r.rpoMs / 1000) };
}

export function summarizeRpo(seconds: number[]): string {
  const sorted = [...seconds].sort((a, b) => a - b);
  const q = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0;
  return `p50 ${q(0.5).toFixed(1)} s, p99 ${q(0.99).toFixed(1)} s, max ${(sorted.at(-1) ?? 0).toFixed(1)} s over ${sorted.length} readings`;
}
