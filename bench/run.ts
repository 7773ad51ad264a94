/**
 * `npm run bench`: backup throughput, output size and memory of this project's backup against bare pg_dump
 * and the seed recipe, its cost with encryption and S3 storage, then the restore test against bare pg_restore
 * on the CLI's backup, on a throwaway PostgreSQL with a reproducible ≥ 500 MB database. See docs/benchmarks.md.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { startEphemeralPostgres, startEphemeralRedis } from '../src/dev/ephemeral.ts';
import { buildDataset, client as pgClient } from './dataset.ts';
import {
  benchKey,
  CLI_BENCH_CONFIG,
  ENCRYPTION_LEGS,
  LEGS,
  LegUnavailable,
  RESTORE_LEGS,
  type Leg,
  type LegContext,
  type RestoreSource,
  type StopHow,
  type Tracked,
} from './legs.ts';
import { dropCaches, filesUnder } from './measure.ts';
import { s3rverVersion } from './s3.ts';
import { ACK_LEG, BURST, DB_NICE, SEEDED_BACKUPS, SPLIT, runAckLeg } from './ack.ts';
import { ackMarkdown, type AckFacts } from './ack-report.ts';
import {
  benchmarksDoc,
  encryptionMarkdown,
  encryptionTargets,
  parseDoc,
  floorLines,
  restoreMarkdown,
  restoreTargets,
  resultsMarkdown,
  summarize,
  targets,
  ACK_HEADING,
  type DocSections,
  type EncryptionFacts,
  type Facts,
  type RestoreFacts,
  type RunRecord,
  machineFacts,
} from './report.ts';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 3));
const SCALE = Number(process.env.BENCH_SCALE ?? 1);
const KEEP = Boolean(process.env.BENCH_KEEP);
const ONLY = process.env.BENCH_LEGS?.split(',')
  .map((s) => s.trim())
  .filter(Boolean);
/** Leg K's rounds: each is three bursts of 50 (p99 of 50 samples is their maximum, so more rounds than the others). */
const ACK_ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 5));
const log = (msg: string) => console.error(msg);

// Clean-up runs once, whether the run ends, fails or is interrupted: stop children, then the legs' pending
// undos (a restore leg's database), then undo the run's own set-up in reverse.
const cleanups: Array<() => Promise<unknown>> = [];
const deferred = new Set<() => Promise<unknown>>();
const live = new Map<Tracked, StopHow | undefined>();
let interrupted = false;
let cleaning: Promise<void> | undefined;

/** SIGKILL, or the child's gentler signal and up to its grace period to finish (then SIGKILL). */
async function stop(sub: Tracked, how: StopHow | undefined): Promise<void> {
  if (!how) return void sub.kill('SIGKILL');
  sub.kill(how.signal);
  let timer: NodeJS.Timeout | undefined;
  const exited = await Promise.race([
    Promise.resolve(sub).then(
      () => true,
      () => true,
    ),
    new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), how.graceMs))),
  ]);
  clearTimeout(timer);
  if (!exited) {
    log(`clean-up: a child ignored ${how.signal} for ${how.graceMs / 1000} s; killing it`);
    sub.kill('SIGKILL');
  }
}

/** Lets Ctrl-C stop a running child (`how`: its gentler signal and grace period). */
function trackChild(sub: Tracked, how?: StopHow): void {
  live.set(sub, how);
  sub.then(
    () => live.delete(sub),
    () => live.delete(sub),
  );
}

function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    await Promise.all([...live].map(([sub, how]) => stop(sub, how)));
    for (const undo of [...deferred].reverse()) await undo().catch((err: unknown) => log(`clean-up: ${String(err)}`));
    for (const undo of cleanups.reverse()) await undo().catch((err: unknown) => log(`clean-up: ${String(err)}`));
  })();
  return cleaning;
}
// `on`, not `once`: tsx re-sends the signal when the child is slow to acknowledge it (and people press Ctrl-C
// twice); with no listener left, tsx's own hidden handler would exit mid clean-up and leave the cluster running.
for (const [signal, code] of [
  ['SIGINT', 130],
  ['SIGTERM', 143],
] as const) {
  process.on(signal, () => {
    if (interrupted) return log(`${signal} again: still cleaning up, one moment…`);
    interrupted = true;
    log(`\n${signal}: stopping and cleaning up…`);
    void cleanup().finally(() => process.exit(code));
  });
}

// A stray crash (an unhandled 'error' event, say) must not leave a cluster running or 600 MB in /tmp.
process.on('uncaughtException', (err) => {
  log(`bench crashed: ${err.stack ?? err.message}`);
  void cleanup().finally(() => process.exit(1));
});

/** libpq settings for the child's environment; a password goes to a 0600 passfile, never argv or PGPASSWORD. */
async function libpqEnv(url: string, dir: string): Promise<Record<string, string>> {
  const u = new URL(url);
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('PG')) env[k] = v;
  env.PGHOST = u.searchParams.get('host') ?? u.hostname.replace(/^\[|\]$/g, '');
  env.PGPORT = u.port || '5432';
  env.PGDATABASE = decodeURIComponent(u.pathname.slice(1));
  if (u.username) env.PGUSER = decodeURIComponent(u.username);
  const sslmode = u.searchParams.get('sslmode');
  if (sslmode) env.PGSSLMODE = sslmode;
  if (u.password) {
    env.PGPASSFILE = join(dir, 'pgpass');
    const pw = decodeURIComponent(u.password).replace(/[\\:]/g, '\\$&');
    await writeFile(env.PGPASSFILE, `*:*:*:*:${pw}\n`, { mode: 0o600 });
  }
  return env;
}

/** The CLI's backup under `dir` (BACKUP_DIR): its manifest names the id, the target and the database artifact. */
async function restoreSource(dir: string, origin: string): Promise<RestoreSource> {
  const manifests = (await filesUnder(dir)).filter((f) => f.endsWith('/manifest.json'));
  if (manifests.length !== 1) throw new Error(`expected one manifest.json under the CLI's BACKUP_DIR, found ${manifests.length}`);
  const file = manifests[0] as string;
  const m = JSON.parse(await readFile(file, 'utf8')) as {
    backupId: string;
    target: string;
    artifacts: Array<{ file: string; role: string; format: string; compression: string; bytes: number; rawBytes: number }>;
  };
  const a = m.artifacts.find((x) => x.role === 'database');
  if (a?.format !== 'custom' || a.compression !== 'zstd') throw new Error(`${m.backupId} has no zstd custom-format database artifact`);
  return {
    backupDir: dir,
    target: m.target,
    backupId: m.backupId,
    artifact: join(file, '..', a.file),
    artifactBytes: a.bytes,
    rawBytes: a.rawBytes,
    origin,
  };
}

const firstLine = async (cmd: string, args: string[]) =>
  (await execa(cmd, args, { reject: false })).stdout.split('\n')[0]?.replace(/^\*+\s*|\s*\*+$/g, '') ?? '';

async function main(): Promise<void> {
  const known = [...LEGS, ...ENCRYPTION_LEGS, ...RESTORE_LEGS].map((l) => l.id).concat(ACK_LEG);
  const unknown = (ONLY ?? []).filter((id) => !known.includes(id));
  if (unknown.length > 0) throw new Error(`BENCH_LEGS: no leg ${unknown.join(', ')} (legs: ${known.join(', ')})`);
  // Leg K brings its own small database: `BENCH_LEGS=K` builds no 600 MB dataset.
  if (!ONLY || ONLY.some((id) => id !== ACK_LEG)) await backupLegs();
  if (!ONLY || ONLY.includes(ACK_LEG)) await ackLeg();
}

/** Leg K (bench/ack.ts): the bot's acks under bursts of slash commands; rewrites its section of the page. */
async function ackLeg(): Promise<void> {
  const started = performance.now();
  const loadBefore = loadavg()[0] ?? 0;
  if (loadBefore > 1) log(`Note: load average ${loadBefore.toFixed(1)} on ${availableParallelism()} CPUs; leg K's latencies will be noisy.`);
  const work = await mkdtemp(join(tmpdir(), 'pgbb-bench-ack-'));
  cleanups.push(() => rm(work, { recursive: true, force: true }));
  const result = await runAckLeg({
    repoRoot,
    tempDir: work,
    rounds: ACK_ROUNDS,
    log,
    track: trackChild,
    cleanup: (undo) => void cleanups.push(undo),
  });
  const describe = await execa('git', ['describe', '--always', '--dirty'], { cwd: repoRoot, reject: false });
  const facts: AckFacts = {
    ...machineFacts(result.pgVersion),
    commit: describe.exitCode === 0 ? describe.stdout.trim() : 'unknown',
    load: [loadBefore, loadavg()[0] ?? 0],
    seconds: (performance.now() - started) / 1000,
  };
  const markdown = ackMarkdown(facts, result);
  await mkdir(join(repoRoot, 'bench', 'results'), { recursive: true });
  const json = join(repoRoot, 'bench', 'results', `ack-${facts.date.replace(/[:.]/g, '-')}.json`);
  await writeFile(json, `${JSON.stringify({ facts, result }, null, 2)}\n`);
  // A standard run (`all`, ≥ 3 rounds of 50, 20 stored backups) replaces the section; the others stay as they were.
  const standard = ACK_ROUNDS >= 3 && BURST === 50 && SEEDED_BACKUPS === 20 && !SPLIT && DB_NICE === undefined;
  const page = join(repoRoot, 'docs', 'benchmarks.md');
  if (standard) {
    const sections = parseDoc(await readFile(page, 'utf8').catch(() => ''));
    sections.acks = markdown;
    await writeFile(page, benchmarksDoc(sections));
  }
  console.log(`\n## ${ACK_HEADING}\n\n${markdown}`);
  log(
    `Wrote ${json.slice(repoRoot.length)}${standard ? ` and docs/benchmarks.md (rewrote ${ACK_HEADING})` : ' (not a standard run: docs/benchmarks.md left as is)'}`,
  );
}

async function backupLegs(): Promise<void> {
  const started = performance.now();
  // Taken before our own build loads the CPUs: what else is running here skews every leg.
  const loadBefore = loadavg()[0] ?? 0;
  if (loadBefore > availableParallelism() / 2) log(`Note: load average ${loadBefore.toFixed(1)} on ${availableParallelism()} CPUs; timings will be noisy.`);
  const work = await mkdtemp(join(tmpdir(), 'pgbb-bench-'));
  cleanups.push(() => rm(work, { recursive: true, force: true }));

  let dbUrl = process.env.BENCH_DATABASE_URL;
  let buildSeconds: number | undefined;
  if (dbUrl) {
    log('Using BENCH_DATABASE_URL as it is (nothing is built or changed there; restore legs create and drop databases of their own beside it).');
  } else {
    log('Starting a throwaway PostgreSQL…');
    // wal_level=minimal lets each table's create+load+index transaction skip WAL: the build takes ~1 min, not 3.
    const server = await startEphemeralPostgres({ settings: { wal_level: 'minimal', max_wal_senders: '0', max_wal_size: '4GB' } });
    if (!KEEP) cleanups.push(() => server.stop());
    log(`Building the benchmark database (scale ${SCALE})…`);
    const t = performance.now();
    dbUrl = await buildDataset(server.url, 'pgbb_bench', SCALE, log);
    buildSeconds = (performance.now() - t) / 1000;
    log(`  built in ${buildSeconds.toFixed(1)} s`);
  }

  const client = pgClient(dbUrl);
  await client.connect();
  cleanups.push(() => client.end());
  const info = await client.query<{ num: string; version: string; size: string; datadir: string | null; settings: string }>(
    `select current_setting('server_version_num') num, version() version, pg_database_size(current_database())::text size,
            (select setting from pg_settings where name = 'data_directory') datadir,
            (select string_agg(name || '=' || setting || coalesce(unit, ''), ', ' order by name) from pg_settings
              where name in ('fsync', 'synchronous_commit', 'full_page_writes', 'wal_level', 'shared_buffers', 'maintenance_work_mem')) settings`,
  );
  const row = info.rows[0];
  if (!row) throw new Error('no answer from the database');
  const dbBytes = Number(row.size);
  if (dbBytes < 500e6) log(`WARNING: the database is only ${(dbBytes / 1e6).toFixed(0)} MB; the targets assume ≥ 500 MB.`);
  // pg_dump must be the server's major: an older one refuses a newer server, a newer one is not what we ship.
  const binDir = `/usr/lib/postgresql/${Math.floor(Number(row.num) / 10000)}/bin`;
  if (!existsSync(join(binDir, 'pg_dump'))) throw new Error(`${binDir}/pg_dump is missing: install the client matching the server`);

  const cache = process.env.BENCH_CACHE !== 'warm' && (await dropCaches()) ? 'cold' : 'warm';
  const tempDir = join(work, 'tmp');
  await mkdir(tempDir, { recursive: true });
  const ctx: LegContext = {
    binDir,
    pgEnv: await libpqEnv(dbUrl, work),
    databaseUrl: dbUrl,
    outDir: join(work, 'out'),
    repoRoot,
    cliEnv: {},
    track: trackChild,
    serverVersionNum: Number(row.num),
    tempDir,
    sql: async (text, values) => (await client.query(text, values)).rows as Array<Record<string, unknown>>,
    defer(undo) {
      deferred.add(undo);
      return () => void deferred.delete(undo);
    },
  };

  // The encryption legs run in the same rounds as the other backup legs: E / C compares runs side by side.
  const legs = [...LEGS, ...ENCRYPTION_LEGS].filter((l) => !ONLY || ONLY.includes(l.id));
  const restoreLegs = RESTORE_LEGS.filter((l) => !ONLY || ONLY.includes(l.id));
  const notes = new Map<string, string>();
  for (const leg of [...legs, ...restoreLegs]) {
    const why = leg.unavailable?.(ctx);
    if (why) {
      notes.set(leg.id, why);
      log(`Leg ${leg.id} skipped: ${why}`);
    }
  }
  const wantRestore = restoreLegs.some((l) => !notes.has(l.id));
  if (legs.some((l) => l.usesCli && !notes.has(l.id)) || wantRestore) {
    // The CLI may want Redis (queues); a throwaway one costs ~50 ms and keeps it off the machine's own.
    const redis = await startEphemeralRedis();
    cleanups.push(() => redis.stop());
    ctx.cliEnv.REDIS_URL = redis.url;
    ctx.cliEnv.BOT_CONFIG = join(tempDir, 'cli-bench.yml');
    await writeFile(ctx.cliEnv.BOT_CONFIG, CLI_BENCH_CONFIG);
  }
  // The encrypted legs' key pair, made once before the rounds (the legs would make it on first use, inside no time).
  const keyMadeBy = legs.some((l) => l.encrypted && !notes.has(l.id)) ? (await benchKey(ctx)).madeBy : undefined;

  const records: RunRecord[] = [];
  /** Every active leg once per round, the order rotated each round so no leg always runs first. */
  async function rounds(group: Leg[], after?: (leg: Leg, round: number) => Promise<void>): Promise<void> {
    const active = group.filter((l) => !notes.has(l.id));
    for (let round = 0; round < ROUNDS && active.length > 0; round++) {
      const order = [...active.slice(round % active.length), ...active.slice(0, round % active.length)];
      for (const leg of order) {
        if (notes.has(leg.id)) continue; // failed in an earlier round: do not spend minutes failing again
        await rm(ctx.outDir, { recursive: true, force: true });
        await mkdir(ctx.outDir, { recursive: true });
        await client.query('checkpoint').catch(() => undefined); // needs superuser or pg_checkpoint; best effort
        if (cache === 'cold') await dropCaches();
        try {
          const result = await leg.run(ctx);
          records.push({ round, leg: leg.id, result });
          const rss = result.processes.map((p) => `${p.name} ${(p.hwmKb / 1024).toFixed(0)} MiB`).join(', ');
          const parts = Object.entries(result.parts ?? {})
            .map(([k, ms]) => `${k} ${(ms / 1000).toFixed(2)} s`)
            .join(', ');
          log(
            `round ${round + 1} ${leg.id.padEnd(2)} ${(result.ms / 1000).toFixed(2)} s  ${(result.bytes / 1e6).toFixed(1)} MB  cpu ${result.cpuSeconds?.toFixed(1) ?? '?'} s  [${rss}]${parts ? `  (${parts})` : ''}`,
          );
          await after?.(leg, round);
        } catch (err) {
          if (interrupted) throw err;
          if (err instanceof LegUnavailable) {
            notes.set(leg.id, err.message);
            log(`Leg ${leg.id} skipped: ${err.message}`);
            continue;
          }
          const msg = err instanceof Error ? err.message : String(err);
          records.push({ round, leg: leg.id, error: msg });
          notes.set(leg.id, `failed in round ${round + 1}: ${msg.replace(/\s+/g, ' ').slice(0, 300)}`);
          log(`round ${round + 1} ${leg.id} FAILED: ${msg}`);
        }
      }
    }
  }

  // The restore legs restore the CLI's own backup: leg C's of the last round it passed, kept aside (untimed).
  const sourceDir = join(work, 'restore-source');
  let origin: string | undefined;
  await rounds(legs, async (leg, round) => {
    if (!wantRestore || leg.id !== 'C') return;
    await rm(sourceDir, { recursive: true, force: true });
    await rename(ctx.outDir, sourceDir);
    origin = `leg C's backup of round ${round + 1}`;
  });
  await rm(ctx.outDir, { recursive: true, force: true });

  let restore: RestoreFacts | undefined;
  if (wantRestore) {
    const loadStart = loadavg()[0] ?? 0;
    const restoreStarted = performance.now();
    try {
      if (!origin) {
        const cli = LEGS.find((l) => l.id === 'C');
        const why = cli?.unavailable?.(ctx) ?? (cli ? undefined : 'no CLI leg');
        if (why || !cli) throw new LegUnavailable(why ?? 'no CLI leg');
        log('One extra CLI backup for the restore legs (untimed)…');
        await rm(sourceDir, { recursive: true, force: true });
        await mkdir(sourceDir, { recursive: true });
        await cli.run({ ...ctx, outDir: sourceDir });
        origin = 'an extra untimed CLI backup: leg C did not run or did not pass';
      }
      ctx.restoreSource = await restoreSource(sourceDir, origin);
      log(
        `Restore legs restore ${ctx.restoreSource.backupId} (${origin}): ${(ctx.restoreSource.artifactBytes / 1e6).toFixed(1)} MB, ${(ctx.restoreSource.rawBytes / 1e6).toFixed(1)} MB decompressed.`,
      );
    } catch (err) {
      if (interrupted) throw err;
      const msg = `no CLI backup to restore: ${(err instanceof Error ? err.message : String(err)).replace(/\s+/g, ' ').slice(0, 300)}`;
      for (const leg of restoreLegs) if (!notes.has(leg.id)) notes.set(leg.id, msg);
      log(`Restore legs skipped: ${msg}`);
    }
    await rounds(restoreLegs);
    const src = ctx.restoreSource;
    restore = {
      ...(src ? { backupId: src.backupId, origin: src.origin, artifactBytes: src.artifactBytes, rawBytes: src.rawBytes } : {}),
      serverSettings: row.settings,
      load: [loadStart, loadavg()[0] ?? 0],
      seconds: (performance.now() - restoreStarted) / 1000,
    };
  }

  const throughputLegs = legs.filter((l) => LEGS.includes(l));
  const summaries = summarize(throughputLegs, records, notes);
  const rows = targets(summaries);
  // The encryption section: its legs beside C, the baseline they are compared with.
  const encryptionLegs = legs.filter((l) => ENCRYPTION_LEGS.includes(l));
  const encryptionSummaries = summarize(
    legs.filter((l) => l.id === 'C' || encryptionLegs.includes(l)),
    records,
    notes,
  );
  const encryptionRows = encryptionLegs.length > 0 ? encryptionTargets(encryptionSummaries) : [];
  const restoreSummaries = summarize(restoreLegs, records, notes);
  const restoreRows = restoreTargets(restoreSummaries);
  const u = new URL(dbUrl);
  const facts: Facts = {
    ...machineFacts(row.version.split(' on ')[0] ?? row.version),
    pgDump: await firstLine(join(binDir, 'pg_dump'), ['--version']),
    zstd: await firstLine('zstd', ['--version']),
    database: `${u.hostname}:${u.port}${u.pathname}`, // never the password
    dbBytes,
    cache,
    load: [loadBefore, loadavg()[0] ?? 0],
    rounds: ROUNDS,
    ...(restore ? { withRestore: true } : {}),
    ...(buildSeconds === undefined ? {} : { buildSeconds }),
    totalSeconds: (performance.now() - started) / 1000,
  };
  const markdown = resultsMarkdown(facts, summaries, rows);
  const restoreMd = restore ? restoreMarkdown(facts, restore, restoreSummaries, restoreRows) : undefined;
  let encryption: EncryptionFacts | undefined;
  let encryptionMd: string | undefined;
  if (encryptionLegs.length > 0) {
    const ageSeen: EncryptionFacts['ageSeen'] = {};
    for (const leg of encryptionLegs.filter((l) => l.encrypted)) {
      const ok = records.filter((r) => r.leg === leg.id && r.result);
      ageSeen[leg.id] = [ok.filter((r) => r.result?.processes.some((p) => p.name === 'age')).length, ok.length];
    }
    const age = await firstLine('age', ['--version']).catch(() => '');
    encryption = {
      // What src/crypto/age-cli.ts picks: the age CLI when `age --version` says 1.x, else the library in-process.
      engine: /^v?1\./.test(age)
        ? `the age CLI (age ${age.replace(/^v/, '')} on PATH)`
        : "the age-encryption library inside the CLI's node process (no age 1.x on PATH)",
      ...(keyMadeBy ? { keyMadeBy } : {}),
      s3rver: s3rverVersion(),
      ageSeen,
      alongside: throughputLegs.filter((l) => l.id !== 'C').map((l) => l.id),
    };
    encryptionMd = encryptionMarkdown(facts, encryption, encryptionSummaries, encryptionRows);
  }
  await mkdir(join(repoRoot, 'bench', 'results'), { recursive: true });
  const json = join(repoRoot, 'bench', 'results', `backup-${facts.date.replace(/[:.]/g, '-')}.json`);
  const restoreJson = restore ? { restore: { facts: restore, summaries: restoreSummaries, targets: restoreRows } } : {};
  const encryptionJson = encryption ? { encryption: { facts: encryption, summaries: encryptionSummaries, targets: encryptionRows } } : {};
  await writeFile(json, `${JSON.stringify({ facts, summaries, targets: rows, ...restoreJson, ...encryptionJson, records }, null, 2)}\n`);
  // Only a standard run (the built dataset at scale 1, ≥ 3 rounds) may replace sections of the committed page,
  // and only those whose legs it all ran; the page's other sections are carried over as they were.
  const standard = !process.env.BENCH_DATABASE_URL && SCALE === 1 && ROUNDS >= 3;
  const ranAll = (ids: string[]) => ids.every((id) => !ONLY || ONLY.includes(id));
  const page = join(repoRoot, 'docs', 'benchmarks.md');
  const sections: DocSections = parseDoc(await readFile(page, 'utf8').catch(() => ''));
  const rewritten: string[] = [];
  if (standard && ranAll([...LEGS, ...RESTORE_LEGS].map((l) => l.id))) {
    // One run's pair: the restore section says "same machine and run as above", so it never outlives its run.
    sections.throughput = markdown;
    if (restoreMd) sections.restore = restoreMd;
    else delete sections.restore;
    rewritten.push('Backup throughput', 'Restore test');
  }
  if (standard && encryptionMd && ranAll(['C', ...ENCRYPTION_LEGS.map((l) => l.id)])) {
    sections.encryption = encryptionMd;
    rewritten.push('Encryption');
  }
  if (rewritten.length > 0) await writeFile(page, benchmarksDoc(sections));
  const shown = [
    throughputLegs.length > 0 ? `## Backup throughput\n\n${markdown}\n` : '',
    restoreMd ? `## Restore test\n\n${restoreMd}\n` : '',
    encryptionMd ? `## Encryption\n\n${encryptionMd}\n` : '',
  ].filter(Boolean);
  console.log(`\n${shown.join('\n')}`);
  const floor = floorLines(summarize(legs, records, notes));
  if (floor.length > 0) console.log(`## The backup's cost against its floor (issue 17)\n\n${floor.map((f) => `- ${f}`).join('\n')}\n`);
  log(
    `Wrote ${json.slice(repoRoot.length)}` +
      (rewritten.length > 0
        ? ` and docs/benchmarks.md (rewrote ${rewritten.join(', ')}; other sections kept as they were)`
        : standard
          ? ' (no page section had all its legs in BENCH_LEGS: docs/benchmarks.md left as is)'
          : ' (not a standard run: docs/benchmarks.md left as is)'),
  );
  if (KEEP && !process.env.BENCH_DATABASE_URL) {
    log(`BENCH_KEEP: the cluster is still running. Reuse it: BENCH_DATABASE_URL='${dbUrl}' npm run bench`);
    log(`Stop it: runuser -u postgres -- ${binDir}/pg_ctl -D ${row.datadir ?? '<data dir>'} -m fast stop, then rm -rf that directory's parent.`);
  }
}

try {
  await main();
} catch (err) {
  if (!interrupted) {
    log(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exitCode = 1;
  }
} finally {
  await cleanup();
}
