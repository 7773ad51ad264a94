import { availableParallelism, cpus, release, totalmem } from 'node:os';
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
  /** Median CPU seconds the machine was busy during the leg (all processes; other work included). */
  cpuSeconds?: number;
  /** Highest peak per process name across rounds (pg_dump, zstd, gzip, node…). */
  processPeaksKb: Record<string, number>;
  /** Per named part (LegResult.parts): the rounds' values and their median, in ms. */
  parts?: Record<string, { runsMs: number[]; medianMs: number }>;
}

/** The machine and the moment of a run: every section of docs/benchmarks.md starts with them. */
export interface MachineFacts {
  date: string;
  nproc: number;
  cpu: string;
  memGiB: number;
  kernel: string;
  node: string;
  pgVersion: string;
}

/** Read now, from this process's machine; the PostgreSQL version is the server's the legs ran against. */
export function machineFacts(pgVersion: string): MachineFacts {
  return {
    date: new Date().toISOString(),
    nproc: availableParallelism(),
    cpu: cpus()[0]?.model.trim() ?? 'unknown',
    memGiB: totalmem() / 2 ** 30,
    kernel: release(),
    node: process.version,
    pgVersion,
  };
}

export interface Facts extends MachineFacts {
  pgDump: string;
  zstd: string;
  database: string;
  dbBytes: number;
  cache: 'cold' | 'warm';
  /** 1-minute load average at start (before the build) and after the rounds: other work skews every leg. */
  load: [number, number];
  rounds: number;
  /** The run also timed the restore legs (their own section); totalSeconds includes them. */
  withRestore?: boolean;
  buildSeconds?: number;
  totalSeconds?: number;
}

/** The restore section's own facts. */
export interface RestoreFacts {
  /** The CLI backup every restore leg restored (absent when there was none). */
  backupId?: string;
  origin?: string;
  artifactBytes?: number;
  rawBytes?: number;
  /** fsync, wal_level… of the server restored into: they decide how much a restore writes. */
  serverSettings: string;
  /** 1-minute load average when the restore legs started and when they ended. */
  load: [number, number];
  seconds: number;
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
    const cpu = ok.map((r) => r.cpuSeconds).filter((v): v is number => v !== undefined);
    const parts: NonNullable<LegSummary['parts']> = {};
    for (const name of new Set(ok.flatMap((r) => Object.keys(r.parts ?? {})))) {
      const runsMs = ok.map((r) => r.parts?.[name]).filter((v): v is number => v !== undefined);
      parts[name] = { runsMs, medianMs: median(runsMs) };
    }
    return {
      id: leg.id,
      title: leg.title,
      command: leg.command,
      status: failed ? 'failed' : ok.length ? 'ok' : 'skipped',
      ...(note === undefined ? {} : { note }),
      runsMs: ok.map((r) => r.ms),
      ...(ok.length ? { medianMs: median(ok.map((r) => r.ms)), bytes: median(ok.map((r) => r.bytes)) } : {}),
      ...(rss.length ? { peakRssKb: Math.max(...rss) } : {}),
      ...(cpu.length ? { cpuSeconds: median(cpu) } : {}),
      processPeaksKb: peaks,
      ...(Object.keys(parts).length ? { parts } : {}),
    };
  });
}

const sec = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;
const mib = (kb: number) => `${(kb / 1024).toFixed(1)} MiB`;
const verdict = (ok: boolean, ref: boolean) => `${ref ? '(ref) ' : ''}${ok ? 'PASS' : 'FAIL'}`;

/**
 * The issue's targets, for the CLI (C) and, as references, the worker path (W: what `/backup now` runs, no
 * process start-up) and the raw pipeline (C': what is reachable without counts, checks or a manifest).
 */
export function targets(summaries: LegSummary[]): TargetRow[] {
  const by = (id: string) => summaries.find((s) => s.id === id);
  const a = by('A');
  const b = by('B');
  const rows: TargetRow[] = [];
  for (const id of ['C', 'W', "C'"]) {
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

/** The columns of a backup leg's row, in the throughput and the encryption tables alike. */
const BACKUP_LEG_COLUMNS = ['leg', 'what', 'median wall', 'rounds (s)', 'output', 'machine CPU (median)', 'peak RSS (main)', 'peak RSS per process'];

function backupLegRow(s: LegSummary): string[] {
  return [
    s.id,
    `${s.title}: \`${s.command}\``,
    s.medianMs === undefined ? (s.status === 'failed' ? 'FAILED' : 'skipped') : sec(s.medianMs),
    s.runsMs.map((ms) => (ms / 1000).toFixed(2)).join(', ') || '–',
    s.bytes === undefined ? '–' : mb(s.bytes),
    s.cpuSeconds === undefined ? '–' : `${s.cpuSeconds.toFixed(1)} s`,
    s.peakRssKb === undefined ? '–' : mib(s.peakRssKb),
    Object.entries(s.processPeaksKb)
      .map(([n, kb]) => `${n} ${mib(kb)}`)
      .join(', ') || '–',
  ];
}

export function resultsMarkdown(facts: Facts, summaries: LegSummary[], rows: TargetRow[]): string {
  const legRows = summaries.map(backupLegRow);
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
    facts.totalSeconds === undefined
      ? ''
      : `Whole run (start, build, ${facts.rounds} rounds, clean-up${facts.withRestore ? `, then the restore test's ${facts.rounds} rounds below` : ''}): ${facts.totalSeconds.toFixed(0)} s.`,
    '',
    table(BACKUP_LEG_COLUMNS, legRows),
    '',
    `Machine CPU: seconds the ${facts.nproc} CPUs were busy during the leg, every process included (the server's backend, zstd, the CLI); with ${facts.nproc} CPUs a leg cannot take less wall time than CPU / ${facts.nproc}.`,
    '',
    table(
      ['check', 'goal', 'measured', 'verdict'],
      rows.map((r) => [r.check, r.goal, r.measured, r.verdict]),
    ),
    ...(notes.length ? ['', ...notes] : []),
  ].join('\n');
}

/**
 * The restore issue's target: "verification adds at most 25 % on top of the restore itself", i.e. R3 (the
 * whole restore test) against R2 (the same restore, bare: decompress to a file, pg_restore -j 2). R3 / R1
 * and R3's own RTO are shown beside it.
 */
export function restoreTargets(summaries: LegSummary[]): TargetRow[] {
  const by = (id: string) => summaries.find((s) => s.id === id);
  const [r1, r2, r3] = [by('R1'), by('R2'), by('R3')];
  const rows: TargetRow[] = [];
  const skip = (check: string, goal: string, leg: LegSummary | undefined) =>
    rows.push({ check, goal, measured: '–', verdict: leg?.note ? `SKIP (${leg.id}: see note)` : 'SKIP (leg or baseline did not run)' });
  const x = r3?.medianMs;
  // Issue 14: the checks of each level on top of the bare restore; the default level (content) has the goal.
  for (const [id, level, goal] of [
    ['R3', 'counts', '(shown)'],
    ['R3c', 'content', '≤ 1.25×'],
    ['R3f', 'full', '(shown)'],
  ] as const) {
    const leg = by(id);
    const check = `${id} (verify: ${level}) / R2 wall time (the checks on top of the restore)`;
    if (leg?.medianMs === undefined || r2?.medianMs === undefined) {
      skip(check, goal, leg?.medianMs === undefined ? leg : r2);
      continue;
    }
    const r = leg.medianMs / r2.medianMs;
    rows.push({ check, goal, measured: `${r.toFixed(2)}×`, verdict: goal === '(shown)' ? 'info' : verdict(r <= 1.25, false) });
  }
  if (x !== undefined && r1?.medianMs !== undefined) {
    rows.push({ check: 'R3 / R1 wall time', goal: '(shown)', measured: `${(x / r1.medianMs).toFixed(2)}×`, verdict: 'info' });
  } else skip('R3 / R1 wall time', '(shown)', r3?.medianMs === undefined ? r3 : r1);
  const rto = r3?.parts?.rto?.medianMs;
  const overhead = r3?.parts?.overhead?.medianMs;
  if (x !== undefined && rto !== undefined && overhead !== undefined) {
    rows.push({
      check: 'R3 wall − its own restore (RTO)',
      goal: '(shown)',
      measured: `${sec(overhead)} (${((overhead / rto) * 100).toFixed(0)} % of the RTO)`,
      verdict: 'info',
    });
    if (r2?.medianMs !== undefined) {
      rows.push({ check: "R3's restore (RTO) / R2 wall time", goal: '(shown)', measured: `${(rto / r2.medianMs).toFixed(2)}×`, verdict: 'info' });
    }
  } else skip('R3 wall − its own restore (RTO)', '(shown)', r3);
  if (r3?.peakRssKb !== undefined) rows.push({ check: 'R3 peak RSS (node)', goal: '(shown)', measured: mib(r3.peakRssKb), verdict: 'info' });
  return rows;
}

export function restoreMarkdown(facts: Facts, restore: RestoreFacts, summaries: LegSummary[], rows: TargetRow[]): string {
  const partCell = (s: LegSummary, name: string) => {
    const p = s.parts?.[name];
    return p ? `${sec(p.medianMs)} (${p.runsMs.map((ms) => (ms / 1000).toFixed(2)).join(', ')})` : '–';
  };
  const legRows = summaries.map((s) => [
    s.id,
    `${s.title}: \`${s.command}\``,
    s.medianMs === undefined ? (s.status === 'failed' ? 'FAILED' : 'skipped') : sec(s.medianMs),
    s.runsMs.map((ms) => (ms / 1000).toFixed(2)).join(', ') || '–',
    partCell(s, 'rto'),
    partCell(s, 'overhead'),
    s.bytes === undefined || s.bytes === 0 ? '–' : mb(s.bytes),
    s.peakRssKb === undefined ? '–' : mib(s.peakRssKb),
    Object.entries(s.processPeaksKb)
      .map(([n, kb]) => `${n} ${mib(kb)}`)
      .join(', ') || '–',
  ]);
  const r2 = summaries.find((s) => s.id === 'R2');
  const r3 = summaries.find((s) => s.id === 'R3');
  const split: string[] = [];
  if (r2?.parts?.decompress && r2.parts.pg_restore) {
    split.push(`- R2 split (median): \`zstd -d\` to the file ${sec(r2.parts.decompress.medianMs)}, \`pg_restore -j 2\` ${sec(r2.parts.pg_restore.medianMs)}.`);
  }
  if (r3?.parts?.rtoRecord && r3.parts.verifyRecord && r3.parts.testRecord && r3.medianMs !== undefined) {
    split.push(
      `- R3 by the CLI's own clock (its restore-test record, median): restore ${sec(r3.parts.rtoRecord.medianMs)} (decompress + both pg_restore passes), ` +
        `checksums + row/object counts ${sec(r3.parts.verifyRecord.medianMs)}, whole test ${sec(r3.parts.testRecord.medianMs)} (the remainder: scratch ` +
        `database create and drop, tool lookup); outside the test (node start-up and module loading, finding the backup, writing the record, exit) ` +
        `${sec(r3.medianMs - r3.parts.testRecord.medianMs)}.`,
    );
  }
  const notes = summaries.filter((s) => s.note).map((s) => `- ${s.id}: ${s.note}`);
  const source =
    restore.backupId === undefined
      ? 'No CLI backup was available, so no restore leg ran.'
      : `Every leg restores the same backup, ${restore.backupId} (${restore.origin}): ${mb(restore.artifactBytes ?? 0)} zstd, ` +
        `${mb(restore.rawBytes ?? 0)} decompressed, each round into a fresh database (\`CREATE DATABASE … TEMPLATE template0\` before, dropped after, both untimed for R1 and R2; R3 creates and drops its own scratch database inside its time).`;
  return [
    source,
    `Same machine and run as above; ${facts.rounds} rounds, leg order rotated each round, median shown; ` +
      (facts.cache === 'cold' ? 'page cache dropped and CHECKPOINT before every leg. ' : 'page cache NOT dropped (warm runs). ') +
      'Wall time runs until pg_restore (R3: the CLI) exits.',
    `Server restored into: ${restore.serverSettings}. With wal_level=minimal a parallel pg_restore (R2, R3) loads each table in the transaction that truncates it, which skips WAL for the COPY; R1's single job cannot. fsync=off: nothing is flushed to disk.`,
    `Load average (1 min) ${restore.load[0].toFixed(1)} when the restore legs started, ${restore.load[1].toFixed(1)} at their end` +
      (restore.load[0] > facts.nproc / 2 ? ': other work was running, treat the times with care.' : '.') +
      ` The restore legs took ${restore.seconds.toFixed(0)} s.`,
    '',
    table(
      [
        'leg',
        'what',
        'median wall',
        'rounds (s)',
        "CLI's `restore (RTO)` (rounds)",
        'wall − RTO (rounds)',
        'restored size',
        'peak RSS (main)',
        'peak RSS per process',
      ],
      legRows,
    ),
    ...(split.length ? ['', ...split] : []),
    '',
    table(
      ['check', 'goal', 'measured', 'verdict'],
      rows.map((r) => [r.check, r.goal, r.measured, r.verdict]),
    ),
    ...(notes.length ? ['', ...notes] : []),
  ].join('\n');
}

/** The encryption section's own facts (the machine, database and rounds are the run's: Facts). */
export interface EncryptionFacts {
  /** How the CLI encrypts here: `age CLI (age 1.1.1 on PATH)` or the library when age is not installed. */
  engine: string;
  /** How the throwaway key pair was made: `age-keygen` or the age-encryption package. */
  keyMadeBy?: string;
  /** s3rver's version, for the S3 legs. */
  s3rver: string;
  /** Rounds in which an `age` process was seen under the CLI, per encrypted leg: `{ E: [3, 3] }` (seen, rounds). */
  ageSeen: Record<string, [number, number]>;
  /** The other backup legs timed in the same rounds (they share the machine with these). */
  alongside: string[];
}

/**
 * Issue 6's target: "encryption adds at most 10 % wall time", i.e. E (the CLI, encrypted, local) against C
 * (the same, unencrypted), and ES against CS on S3. ES / C (encrypted off-site against the unencrypted local
 * run) is a reference: it includes what the S3 server itself costs (CS / C).
 */
export function encryptionTargets(summaries: LegSummary[]): TargetRow[] {
  const by = (id: string) => summaries.find((s) => s.id === id);
  const rows: TargetRow[] = [];
  const ratio = (x: string, base: string, check: string, goal: string, limit: number | undefined, ref = false) => {
    const [a, b] = [by(x), by(base)];
    if (a?.medianMs === undefined || b?.medianMs === undefined) {
      const missing = a?.medianMs === undefined ? a : b;
      rows.push({ check, goal, measured: '–', verdict: missing?.note ? `SKIP (${missing.id}: see note)` : 'SKIP (leg or baseline did not run)' });
      return;
    }
    const r = a.medianMs / b.medianMs;
    const measured = `${r.toFixed(2)}× (${sec(a.medianMs)} vs ${sec(b.medianMs)})`;
    rows.push({ check, goal, measured, verdict: limit === undefined ? 'info' : verdict(r <= limit, ref) });
  };
  ratio('E', 'C', 'E / C wall time (encryption, local storage)', '≤ 1.10×', 1.1);
  ratio('ES', 'CS', 'ES / CS wall time (encryption, S3 storage)', '≤ 1.10×', 1.1);
  ratio('ES', 'C', 'ES / C wall time (encrypted to S3 vs unencrypted local)', '≤ 1.10×', 1.1, true);
  ratio('CS', 'C', 'CS / C wall time (S3 storage itself)', '(shown)', undefined);
  const [c, e, es] = [by('C'), by('E'), by('ES')];
  if (e?.bytes !== undefined && c?.bytes !== undefined) {
    const m = `${mb(e.bytes)} vs ${mb(c.bytes)} (${e.bytes >= c.bytes ? '+' : ''}${(((e.bytes - c.bytes) / c.bytes) * 100).toFixed(2)} %)`;
    rows.push({ check: 'E size vs C', goal: '(shown)', measured: m, verdict: 'info' });
  }
  if (e?.peakRssKb !== undefined) {
    rows.push({ check: 'E peak RSS (node)', goal: "< 150 MiB (C's target)", measured: mib(e.peakRssKb), verdict: verdict(e.peakRssKb < 150 * 1024, false) });
  } else
    rows.push({
      check: 'E peak RSS (node)',
      goal: "< 150 MiB (C's target)",
      measured: '–',
      verdict: e?.note ? 'SKIP (E: see note)' : 'SKIP (leg did not run)',
    });
  if (es?.peakRssKb !== undefined) rows.push({ check: 'ES peak RSS (node)', goal: '(shown)', measured: mib(es.peakRssKb), verdict: 'info' });
  return rows;
}

export function encryptionMarkdown(facts: Facts, enc: EncryptionFacts, summaries: LegSummary[], rows: TargetRow[]): string {
  const legRows = summaries.map(backupLegRow);
  const notes = summaries.filter((s) => s.note).map((s) => `- ${s.id}: ${s.note}`);
  const seen = Object.entries(enc.ageSeen).map(([id, [n, of]]) => `${id} ${n} of ${of}`);
  const build = facts.buildSeconds === undefined ? 'given by BENCH_DATABASE_URL' : `built in ${facts.buildSeconds.toFixed(0)} s`;
  return [
    `Run ${facts.date}. Machine: ${facts.nproc} CPUs (${facts.cpu}), ${facts.memGiB.toFixed(1)} GiB RAM, Linux ${facts.kernel}, Node ${facts.node}.`,
    `${facts.pgVersion}; ${facts.pgDump}; ${facts.zstd}.`,
    `Database: ${mb(facts.dbBytes)} (pg_database_size), ${build}. ${facts.rounds} rounds` +
      (enc.alongside.length ? `, in the same rounds as leg${enc.alongside.length === 1 ? '' : 's'} ${enc.alongside.join(', ')}` : '') +
      ', leg order rotated each round, median shown;',
    facts.cache === 'cold'
      ? "page cache dropped and CHECKPOINT before every leg (cold-ish). Wall time runs until the output is fsynced (S3 legs: the S3 server's files too)."
      : "page cache NOT dropped (not permitted or BENCH_CACHE=warm): warm runs. Wall time runs until the output is fsynced (S3 legs: the S3 server's files too).",
    `Encryption: to one throwaway age key made for the run${enc.keyMadeBy ? ` by ${enc.keyMadeBy}` : ''} (BACKUP_ENCRYPTION_RECIPIENT, config \`encryption: age\`); ` +
      `the CLI encrypts with ${enc.engine}` +
      (seen.length ? ` (an \`age\` process under the CLI in ${seen.join(', ')} rounds)` : '') +
      '. Every artifact of E and ES is checked after each round to start with the age header (`age-encryption.org/v1`) and to be listed as age in the manifest; every artifact of C and CS not to.',
    `S3: s3rver ${enc.s3rver} in the bench's own process on 127.0.0.1, a fresh server and bucket each round (started and stopped outside the time), ` +
      "path-style, S3_MODE=primary, the CLI's default multipart parts; output = every object in the bucket plus any file under BACKUP_DIR.",
    `Load average (1 min) ${facts.load[0].toFixed(1)} at start, ${facts.load[1].toFixed(1)} at the end (that one includes the bench's own legs)` +
      (facts.load[0] > facts.nproc / 2 ? ': other work was running, treat the times with care.' : '.'),
    '',
    table(BACKUP_LEG_COLUMNS, legRows),
    '',
    table(
      ['check', 'goal', 'measured', 'verdict'],
      rows.map((r) => [r.check, r.goal, r.measured, r.verdict]),
    ),
    ...(notes.length ? ['', ...notes] : []),
  ].join('\n');
}

/** The page's result sections, by heading; a run rewrites the ones it measured and carries the others over. */
export interface DocSections {
  throughput?: string;
  restore?: string;
  encryption?: string;
  /** Leg K's latest standard run. */
  acks?: string;
  /** Leg K before the fixes of issue 11 item 5: written by hand, carried over by every run. */
  acksBefore?: string;
  /** Every section as the page had them, in its order: sections no bench writes (PITR, the fleet) are kept as they are. */
  page?: Array<{ title: string; body: string }>;
}

export const ACK_HEADING = 'Acknowledgements under a burst';

const HEADINGS: Array<[Exclude<keyof DocSections, 'page'>, string]> = [
  ['throughput', 'Backup throughput'],
  ['restore', 'Restore test'],
  ['encryption', 'Encryption'],
  ['acks', ACK_HEADING],
  ['acksBefore', 'Acknowledgements before the fixes'],
];

/** The sections of a page benchmarksDoc wrote, as it wrote them (text between its heading and the next). */
export function parseDoc(page: string): DocSections {
  const out: DocSections = { page: [] };
  const parts = page.split(/^## /m);
  for (const part of parts.slice(1)) {
    const nl = part.indexOf('\n');
    const title = (nl < 0 ? part : part.slice(0, nl)).trim();
    const body = part.slice(nl + 1).trim();
    const key = HEADINGS.find(([, t]) => t === title)?.[0];
    if (key) out[key] = body;
    out.page?.push({ title, body });
  }
  return out;
}

export function benchmarksDoc(sections: DocSections): string {
  // The page's sections in its order, the bench's own as this run has them; a bench section new to the page after them.
  const known = (title: string) => HEADINGS.find(([, t]) => t === title)?.[0];
  const listed = (sections.page ?? []).map((p) => p.title);
  const fresh = HEADINGS.filter(([, t]) => !listed.includes(t)).map(([, title]) => ({ title, body: '' }));
  const body = [...(sections.page ?? []), ...fresh]
    .map(({ title, body: kept }) => {
      const key = known(title);
      const text = key ? sections[key] : kept;
      return text === undefined ? '' : `## ${title}\n\n${text}\n`;
    })
    .filter(Boolean)
    .join('\n');
  return `# Benchmarks

\`npm run bench\` (bench/run.ts) starts a throwaway PostgreSQL, builds a reproducible database of at least
500 MB (text from a Zipf-like vocabulary, jsonb with a GIN index, numerics and timestamps, a partitioned
table; fixed \`setseed\`), times each backup leg in alternating rounds, then each restore leg on the CLI's
backup in alternating rounds, and rewrites this page. Raw JSON per run lands in bench/results/ (gitignored).
Benchmarks are never part of \`npm test\`.

Legs: **A** bare \`pg_dump -Fc -Z0\` (the floor); **B** the seed recipe (\`pg_dump -Fc -Z9\` then \`gzip\`);
**C** this project's CLI (\`node bin/pg-backup-bot.js backup\`, output = every file under BACKUP_DIR, which
must include manifest.json; the CLI legs get a config file of the bench's own: \`encryption: none\`,
restore tests with \`-j 2\` and no smoke queries); **W** the same backup taken by an already-running worker (\`node bin/pg-backup-bot.js worker\`, started before the clock) through the backup queue, as \`/backup now\` and the schedules take it: no process start-up, timed from the enqueue to the job's completion, RSS is the worker's; **C'** the raw pipeline \`pg_dump -Fc -Z0 | zstd -T0 -1\`
through execa, as a reference for what C can reach. Sizes in MB (10^6 bytes); RSS is the kernel's VmHWM in MiB, polled every 50 ms (new descendants found every 250 ms); machine CPU is what /proc/stat says the whole machine was busy for during the leg.

Restore legs, all on the backup leg C made in the last round (or one extra untimed CLI backup when C does not
run), each into a fresh database: **R1** bare \`zstd -dc | pg_restore\` (one job, from a pipe); **R2** bare
\`zstd -d\` to a file, then \`pg_restore -j 2\` (both steps timed); **R3** this project's restore test
(\`node bin/pg-backup-bot.js restore-test <backup-id>\`: checksums, decompression, the two-pass \`-j 2\`
restore, exact row and object counts against the manifest, drop), pinned to \`-j 2\`, no smoke queries and
the same pg_restore as R1 and R2. All use \`--no-owner --no-acl --exit-on-error\`.

Encryption legs, timed in the same rounds as the backup legs and compared with C: **E** the CLI's backup
encrypted with age to a throwaway key pair the bench makes (BACKUP_ENCRYPTION_RECIPIENT, config
\`encryption: age\`), to local storage; **CS** C to a local S3 server the bench starts (s3rver, S3_MODE=primary);
**ES** E to that S3 server. E / C is the cost of encryption (target: at most 10 %), ES / CS the same on S3, CS / C
the cost of S3 itself. Every artifact of E and ES must start with the age header, or the leg fails.

Leg **K** (bench/ack.ts), acknowledgements under a burst, needs none of the above: \`BENCH_LEGS=K npm run bench\` starts
its own throwaway PostgreSQL and Redis, a small database (the sample schema and a filler table, BENCH_ACK_MB, 400), the
bot as \`npm start\` runs it and a Slack Web API stand-in; the bot takes 20 backups to start from, then each round
sends 50 concurrent signed \`/backup now\` (the first starts a backup, so they meet its start), then, once its pg_dump has
run 1.5 s, 50 \`/backup list\` and 50 \`/backup now\`, and checks the answers (one job, all naming it, every backup listed,
every command audited).
It runs BENCH_ROUNDS rounds (5 for K) and rewrites its own section when they are at least 3; BENCH_ACK_PROFILE=DIR
writes a CPU profile of the bot there; BENCH_ACK_SPLIT=1 runs \`bot\` and \`worker\` as two processes instead of \`all\`
(for comparison: such a run leaves the page as it is).

Knobs: BENCH_ROUNDS (3), BENCH_LEGS (e.g. \`A,C\`, \`R2,R3\` or \`C,E,ES,CS\`), BENCH_SCALE (1 ≈ 620 MB), BENCH_CACHE=warm (skip
dropping the page cache), BENCH_DATABASE_URL (dump that database as it is, nothing built or changed in it; the
restore legs need CREATEDB and room for one more copy on that server, and drop what they create), BENCH_KEEP
(leave the built cluster running and print how to reuse it). A new leg is one entry in bench/legs.ts. A run on
the built database at scale 1 with at least 3 rounds rewrites the sections whose legs it all ran (Backup
throughput and Restore test together: A, B, C, C', R1, R2, R3; Encryption: C, E, CS, ES) and keeps the others
as they were.

${body}`;
}

/**
 * Issue 17's comparison: the bot's backups against the compressed floor L and against what a user would run
 * instead (D, `pg_dump -Fc`). Lines for the console and the run's JSON; docs/benchmarks.md's section is written by hand.
 */
export function floorLines(summaries: LegSummary[]): string[] {
  const by = (id: string) => summaries.find((s) => s.id === id);
  const l = by('L');
  const d = by('D');
  const out: string[] = [];
  for (const [id, goal] of [
    ['E', 1.1],
    ['C', undefined],
    ['W', 1.05],
  ] as const) {
    const x = by(id);
    if (!x?.medianMs || !l?.medianMs) continue;
    const r = x.medianMs / l.medianMs;
    out.push(
      `${id} / L wall time: ${r.toFixed(2)}× (${(x.medianMs / 1000).toFixed(1)} s vs ${(l.medianMs / 1000).toFixed(1)} s)${goal ? `, goal ≤ ${goal.toFixed(2)}×: ${r <= goal ? 'met' : 'NOT met'}` : ''}`,
    );
    if (d?.medianMs && x.bytes !== undefined && d.bytes !== undefined) {
      const faster = d.medianMs / x.medianMs;
      out.push(
        `D / ${id}: ${faster.toFixed(2)}× (goal ≥ 2×: ${faster >= 2 ? 'met' : 'NOT met'}); size ${mb(x.bytes)} vs D ${mb(d.bytes)} (${((x.bytes / d.bytes) * 100).toFixed(0)} %, goal ≤ 100 %)`,
      );
    }
  }
  return out;
}
