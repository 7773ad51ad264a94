import type { Leg, LegResult } from './legs.ts';
import { median } from './measure.ts';

export interface RunRecord {
  round: number;
  leg: string;
  result?: LegResult;
  error?: string;
}

export interface LegSummary {
  id: string;
  title: string;
  command: string;
  status: 'ok' | 'skipped' | 'failed';
  note?: string;
  runsMs: number[];
  medianMs?: number;
  bytes?: number;
  peakRssKb?: number;
  /** Highest peak per process name across rounds (pg_dump, zstd, gzip, node…). */
  processPeaksKb: Record<string, number>;
}

export interface Facts {
  date: string;
  nproc: number;
  cpu: string;
  memGiB: number;
  kernel: string;
  node: string;
  pgVersion: string;
  pgDump: string;
  zstd: string;
  database: string;
  dbBytes: number;
  cache: 'cold' | 'warm';
  /** 1-minute load average at start (before the build) and after the rounds: other work skews every leg. */
  load: [number, number];
  rounds: number;
  buildSeconds?: number;
  totalSeconds?: number;
}

export interface TargetRow {
  check: string;
  goal: string;
  measured: string;
  verdict: string;
}

export function summarize(legs: Leg[], records: RunRecord[], notes: Map<string, string>): LegSummary[] {
  return legs.map((leg) => {
    const ok = records.filter((r) => r.leg === leg.id && r.result).map((r) => r.result as LegResult);
    const failed = records.some((r) => r.leg === leg.id && r.error);
    const note = notes.get(leg.id);
    const peaks: Record<string, number> = {};
    for (const p of ok.flatMap((r) => r.processes)) peaks[p.name] = Math.max(peaks[p.name] ?? 0, p.hwmKb);
    const rss = ok.map((r) => r.peakRssKb).filter((v): v is number => v !== undefined);
    return {
      id: leg.id,
      title: leg.title,
      command: leg.command,
      status: failed ? 'failed' : ok.length ? 'ok' : 'skipped',
      ...(note === undefined ? {} : { note }),
      runsMs: ok.map((r) => r.ms),
      ...(ok.length ? { medianMs: median(ok.map((r) => r.ms)), bytes: median(ok.map((r) => r.bytes)) } : {}),
      ...(rss.length ? { peakRssKb: Math.max(...rss) } : {}),
      processPeaksKb: peaks,
    };
  });
}

const sec = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;
const mib = (kb: number) => `${(kb / 1024).toFixed(1)} MiB`;
const verdict = (ok: boolean, ref: boolean) => `${ref ? '(ref) ' : ''}${ok ? 'PASS' : 'FAIL'}`;

/** The issue's targets, for the CLI (C) and, as a reference for what is reachable, the raw pipeline (C'). */
export function targets(summaries: LegSummary[]): TargetRow[] {
  const by = (id: string) => summaries.find((s) => s.id === id);
  const a = by('A');
  const b = by('B');
  const rows: TargetRow[] = [];
  for (const id of ['C', "C'"]) {
    const x = by(id);
    const ref = id !== 'C';
    const skip = (check: string, goal: string) =>
      rows.push({ check, goal, measured: '–', verdict: x?.note ? `SKIP (${id}: see note)` : 'SKIP (leg or baseline did not run)' });
    const xm = x?.medianMs;
    if (xm !== undefined && a?.medianMs !== undefined) {
      const r = xm / a.medianMs;
      rows.push({ check: `${id} / A wall time`, goal: '≤ 1.15×', measured: `${r.toFixed(2)}×`, verdict: verdict(r <= 1.15, ref) });
    } else skip(`${id} / A wall time`, '≤ 1.15×');
    if (xm !== undefined && b?.medianMs !== undefined) {
      const r = b.medianMs / xm;
      rows.push({ check: `B / ${id} wall time`, goal: '≥ 5× faster', measured: `${r.toFixed(1)}×`, verdict: verdict(r >= 5, ref) });
    } else skip(`B / ${id} wall time`, '≥ 5× faster');
    if (x?.bytes !== undefined && b?.bytes !== undefined) {
      const m = `${mb(x.bytes)} vs ${mb(b.bytes)} (${((x.bytes / b.bytes) * 100).toFixed(0)} %)`;
      rows.push({ check: `${id} size vs B`, goal: '≤ B', measured: m, verdict: verdict(x.bytes <= b.bytes, ref) });
    } else skip(`${id} size vs B`, '≤ B');
    if (!ref) {
      if (x?.peakRssKb !== undefined) {
        const ok = x.peakRssKb < 150 * 1024;
        rows.push({ check: 'C peak RSS (node)', goal: '< 150 MiB', measured: mib(x.peakRssKb), verdict: verdict(ok, false) });
      } else skip('C peak RSS (node)', '< 150 MiB');
    }
  }
  return rows;
}

function table(head: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.map((c) => c.replace(/\|/g, '\\|')).join(' | ')} |`;
  return [line(head), line(head.map(() => '---')), ...rows.map(line)].join('\n');
}

export function resultsMarkdown(facts: Facts, summaries: LegSummary[], rows: TargetRow[]): string {
  const legRows = summaries.map((s) => [
    s.id,
    `${s.title}: \`${s.command}\``,
    s.medianMs === undefined ? (s.status === 'failed' ? 'FAILED' : 'skipped') : sec(s.medianMs),
    s.runsMs.map((ms) => (ms / 1000).toFixed(2)).join(', ') || '–',
    s.bytes === undefined ? '–' : mb(s.bytes),
    s.peakRssKb === undefined ? '–' : mib(s.peakRssKb),
    Object.entries(s.processPeaksKb).map(([n, kb]) => `${n} ${mib(kb)}`).join(', ') || '–',
  ]);
  const notes = summaries.filter((s) => s.note).map((s) => `- ${s.id}: ${s.note}`);
  const build = facts.buildSeconds === undefined ? 'given by BENCH_DATABASE_URL' : `built in ${facts.buildSeconds.toFixed(0)} s`;
  return [
    `Run ${facts.date}. Machine: ${facts.nproc} CPUs (${facts.cpu}), ${facts.memGiB.toFixed(1)} GiB RAM, Linux ${facts.kernel}, Node ${facts.node}.`,
    `${facts.pgVersion}; ${facts.pgDump}; ${facts.zstd}.`,
    `Database: ${mb(facts.dbBytes)} (pg_database_size), ${build}. ${facts.rounds} rounds, leg order rotated each round, median shown;`,
    facts.cache === 'cold'
      ? 'page cache dropped and CHECKPOINT before every leg (cold-ish). Wall time runs until the output is fsynced.'
      : 'page cache NOT dropped (not permitted or BENCH_CACHE=warm): warm runs. Wall time runs until the output is fsynced.',
    `Load average (1 min) ${facts.load[0].toFixed(1)} at start, ${facts.load[1].toFixed(1)} at the end (that one includes the bench's own legs)` +
      (facts.load[0] > facts.nproc / 2 ? ': other work was running, treat the times with care.' : '.'),
    facts.totalSeconds === undefined ? '' : `Whole run (start, build, ${facts.rounds} rounds, clean-up): ${facts.totalSeconds.toFixed(0)} s.`,
    '',
    table(['leg', 'what', 'median wall', 'rounds (s)', 'output', 'peak RSS (main)', 'peak RSS per process'], legRows),
    '',
    table(['check', 'goal', 'measured', 'verdict'], rows.map((r) => [r.check, r.goal, r.measured, r.verdict])),
    ...(notes.length ? ['', ...notes] : []),
  ].join('\n');
}

export function benchmarksDoc(results: string): string {
  return `# Benchmarks

\`npm run bench\` (bench/run.ts) starts a throwaway PostgreSQL, builds a reproducible database of at least
500 MB (text from a Zipf-like vocabulary, jsonb with a GIN index, numerics and timestamps, a partitioned
table; fixed \`setseed\`), times each backup leg in alternating rounds, and rewrites this page. Raw JSON per
run lands in bench/results/ (gitignored). Benchmarks are never part of \`npm test\`.

Legs: **A** bare \`pg_dump -Fc -Z0\` (the floor); **B** the seed recipe (\`pg_dump -Fc -Z9\` then \`gzip\`);
**C** this project's CLI (\`node bin/pg-backup-bot.js backup\`, output = every file under BACKUP_DIR, which
must include manifest.json); **C'** the raw pipeline \`pg_dump -Fc -Z0 | zstd -T0 -1\` through execa, as a
reference for what C can reach. Sizes in MB (10^6 bytes); RSS is the kernel's VmHWM in MiB, polled every 50 ms.

Knobs: BENCH_ROUNDS (3), BENCH_LEGS (e.g. \`A,C\`), BENCH_SCALE (1 ≈ 620 MB), BENCH_CACHE=warm (skip dropping
the page cache), BENCH_DATABASE_URL (dump that database as it is, nothing built or changed), BENCH_KEEP
(leave the built cluster running and print how to reuse it). A new leg is one entry in bench/legs.ts.

## Backup throughput

${results}
`;
}
