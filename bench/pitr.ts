/**
 * `npm run bench:pitr`: point-in-time recovery, the bot against pgBackRest (Debian package `pgbackrest`) and the
 * bare tools, side by side on one throwaway cluster with the ≥ 500 MB bench database (issue 15):
 *   - base backup: the bot's CLI, bare `pg_basebackup -Ft -X none -D - | zstd -T0 -2 > file`, pgBackRest full
 *     (zstd, process-max 2, local repository), alternating over BENCH_ROUNDS rounds (default 2);
 *   - RPO under a steady pgbench write load for BENCH_LOAD_S seconds (default 120), as the bot measures it;
 *   - restore to one moment of that load: the bot's restore-pitr plus recovery against pgBackRest's
 *     restore --type=time plus recovery, until the server has left recovery; both must hold the same rows;
 *   - the WAL archiver's resident memory, sampled every second for the whole run.
 * Prints a Markdown table for docs/benchmarks.md. Never run it beside the test suite or another benchmark.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { generateKeyPair } from '../src/crypto/age.ts';
import { startEphemeralPostgres } from '../src/dev/ephemeral.ts';
import { buildDataset, client } from './dataset.ts';
import { median } from './measure.ts';
import { bareBase, botBase, botRestore, type PitrBench, pgbackrest, pgbrBase, pgbrRestore, type Timed } from './pitr-legs.ts';
import { collectRpo, summarizeRpo } from './pitr-rpo.ts';
import { traceText } from './recovery-trace.ts';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 2));
const LOAD_S = Math.max(10, Number(process.env.BENCH_LOAD_S ?? 120));
const SCALE = Number(process.env.BENCH_SCALE ?? 1);
const log = (m: string) => console.error(m);

const dir = await mkdtemp(join(tmpdir(), 'pgbb-bench-pitr-'));
await execa('chmod', ['0755', dir]);
const uid = Number((await execa('id', ['-u', 'postgres'])).stdout);
const gid = Number((await execa('id', ['-g', 'postgres'])).stdout);
const pgbrConfig = join(dir, 'pgbackrest.conf');
const source = await startEphemeralPostgres({
  settings: {
    full_page_writes: 'on',
    archive_mode: 'on',
    archive_command: `pgbackrest --config=${pgbrConfig} --stanza=bench archive-push %p`,
    max_wal_size: '2GB',
    shared_buffers: '256MB',
  },
});
const archiverRss: number[] = [];
let archiver: ReturnType<typeof execa> | undefined;
try {
  for (const d of ['pgbr-repo', 'pgbr-log', 'pgbr-lock', 'pgbr-spool']) await mkdir(join(dir, d), { mode: 0o750 });
  await execa('chown', ['-R', 'postgres:postgres', ...['pgbr-repo', 'pgbr-log', 'pgbr-lock', 'pgbr-spool'].map((d) => join(dir, d))]);
  await writeFile(
    pgbrConfig,
    [
      '[global]',
      `repo1-path=${join(dir, 'pgbr-repo')}`,
      `log-path=${join(dir, 'pgbr-log')}`,
      `lock-path=${join(dir, 'pgbr-lock')}`,
      `spool-path=${join(dir, 'pgbr-spool')}`,
      'repo1-retention-full=99',
      'compress-type=zst',
      'process-max=2',
      'start-fast=y',
      'log-level-console=warn',
      '[bench]',
      `pg1-path=${source.dataDir}`,
      `pg1-port=${source.port}`,
      `pg1-socket-path=${source.dir}`,
      '',
    ].join('\n'),
    { mode: 0o644 },
  );
  const pgbrVersion = (await execa('pgbackrest', ['version'])).stdout.trim();
  const b: PitrBench = {
    dir,
    repoRoot,
    binDir: source.binDir,
    socketDir: source.dir,
    port: source.port,
    dataDir: source.dataDir,
    pgbrConfig,
    uid,
    gid,
    botEnv: {},
  };
  await pgbackrest(b, ['stanza-create']);
  log(`building the bench database (scale ${SCALE}) with WAL archived by pgBackRest …`);
  const dbUrl = await buildDataset(source.url, 'bench', SCALE, log);
  const keys = await generateKeyPair();
  const identity = join(dir, 'key.txt');
  await writeFile(identity, keys.identityFileText, { mode: 0o644 });
  const config = join(dir, 'pg-backup-bot.yml');
  await writeFile(
    config,
    'encryption: age\ntargets:\n  - name: bench\n    urlEnv: BENCH_URL\n    environment: production\n    pitr:\n      urlEnv: BENCH_REPL_URL\n',
  );
  const backupDir = join(dir, 'bot');
  await mkdir(backupDir);
  b.botEnv = {
    PATH: process.env.PATH ?? '',
    BOT_CONFIG: config,
    BACKUP_DIR: backupDir,
    BENCH_URL: dbUrl,
    BENCH_REPL_URL: source.url,
    BACKUP_ENCRYPTION_RECIPIENT: keys.recipient,
    BACKUP_ENCRYPTION_IDENTITY_FILE: identity,
    LOG_LEVEL: 'warn',
  };
  archiver = execa(process.execPath, ['--import', 'tsx', join(repoRoot, 'bench/pitr-archiver.ts')], {
    env: { ...b.botEnv, BENCH_TARGET: 'bench', BENCH_REPLICATION_URL: source.url, BENCH_URL: dbUrl, BENCH_SLOT: 'pgbb_bench', BENCH_SPOOL: join(dir, 'spool') },
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'inherit',
    buffer: false,
  });
  const rpoReadings = collectRpo(archiver.stdout as NodeJS.ReadableStream as import('node:stream').Readable);
  const sampler = setInterval(() => {
    void readFile(`/proc/${archiver?.pid}/status`, 'utf8')
      .then((s) => archiverRss.push(Number(/^VmRSS:\s+(\d+) kB/m.exec(s)?.[1] ?? 0) / 1024))
      .catch(() => undefined);
  }, 1000);

  // The base backups need their WAL from their start: wait until the slot streams (its restart_lsn is set).
  const admin = client(source.url);
  await admin.connect();
  for (let i = 0; ; i++) {
    const r = await admin.query("select active and restart_lsn is not null as up from pg_replication_slots where slot_name = 'pgbb_bench'");
    if (r.rows[0]?.up) break;
    if (i > 600) throw new Error('the WAL stream of the bench did not start within 60 s');
    await new Promise((res) => setTimeout(res, 100));
  }
  await admin.end();
  const legs: Record<string, Timed[]> = { bot: [], bare: [], pgbr: [] };
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? ['bot', 'bare', 'pgbr'] : ['pgbr', 'bare', 'bot'];
    for (const leg of order) {
      const r = leg === 'bot' ? await botBase(b) : leg === 'bare' ? await bareBase(b, round) : await pgbrBase(b);
      legs[leg]?.push(r);
      log(`  round ${round + 1} ${leg}: ${r.seconds.toFixed(1)} s, ${(r.bytes / 1e6).toFixed(0)} MB`);
    }
  }

  log(`pgbench write load for ${LOAD_S} s, RPO sampled as the bot measures it …`);
  await execa(join(source.binDir, 'pgbench'), ['-i', '-s', '20', '-q', dbUrl], { stdin: 'ignore' });
  const load = execa(join(source.binDir, 'pgbench'), ['-c', '2', '-j', '2', '-T', String(LOAD_S), '-R', '400', '-n', dbUrl], { stdin: 'ignore' });
  const midpoint = new Promise<string>((resolve) =>
    setTimeout(
      () => {
        const at = new Date();
        const pad = (n: number) => String(n).padStart(2, '0');
        resolve(
          `${at.getUTCFullYear()}-${pad(at.getUTCMonth() + 1)}-${pad(at.getUTCDate())} ${pad(at.getUTCHours())}:${pad(at.getUTCMinutes())}:${pad(at.getUTCSeconds())}.${String(at.getUTCMilliseconds()).padStart(3, '0')}+00`,
        );
      },
      (LOAD_S * 1000 * 3) / 4,
    ),
  );
  const loadStart = Date.now();
  await load;
  const rpo = summarizeRpo(rpoReadings.since(loadStart));
  const at = await midpoint;
  // Both archives must hold the WAL past the moment: a switch, then pgBackRest's own check (it waits for the push).
  const c = client(dbUrl);
  await c.connect();
  await c.query('select pg_switch_wal()').finally(() => c.end());
  await pgbackrest(b, ['check']);
  await new Promise((r) => setTimeout(r, 5000));

  // The recovering servers run as postgres: restore_command (the bot's wal-fetch) reads the archive and the key as it.
  await execa('chmod', ['-R', 'a+rX', backupDir]);
  log(`restores to ${at} …`);
  const restores = { bot: [] as Awaited<ReturnType<typeof botRestore>>[], pgbr: [] as Awaited<ReturnType<typeof pgbrRestore>>[] };
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? ['bot', 'pgbr'] : ['pgbr', 'bot'];
    for (const leg of order) {
      const r = leg === 'bot' ? await botRestore(b, at) : await pgbrRestore(b, at);
      restores[leg as 'bot' | 'pgbr'].push(r);
      log(
        `  round ${round + 1} ${leg} restore: ${r.seconds.toFixed(1)} s (lay out ${r.laySeconds.toFixed(1)} s, recovery ${r.recoverySeconds.toFixed(1)} s), ${r.rows} rows, stopped at target: ${r.stoppedBefore}`,
      );
      log(`    recovery, from its log: ${traceText(r.trace)}`);
    }
  }
  clearInterval(sampler);

  const med = (xs: Timed[]) => median(xs.map((x) => x.seconds));
  const mb = (xs: Timed[]) => median(xs.map((x) => x.bytes)) / 1e6;
  const bare = med(legs.bare ?? []);
  const pgbrR = median(restores.pgbr.map((r) => r.seconds));
  const rows = new Set([...restores.bot, ...restores.pgbr].map((r) => r.rows));
  const lines = [
    `Point-in-time recovery, ${ROUNDS} alternating rounds, medians; ${pgbrVersion}; PostgreSQL ${source.binDir}; scale ${SCALE}`,
    '',
    '| Leg | Time | Stored | Against the floor | Against pgBackRest |',
    '|---|---|---|---|---|',
    ...(['bare', 'bot', 'pgbr'] as const).map((k) => {
      const name = { bare: 'bare pg_basebackup -Ft -X none \\| zstd -T0 -2', bot: 'bot base backup (zstd, age)', pgbr: 'pgBackRest full (zst, process-max 2)' }[
        k
      ];
      const t = med(legs[k] ?? []);
      return `| ${name} | ${t.toFixed(1)} s | ${mb(legs[k] ?? []).toFixed(0)} MB | ${(t / bare).toFixed(2)}× | ${(t / med(legs.pgbr ?? [])).toFixed(2)}× |`;
    }),
    `| bot restore-pitr + recovery | ${median(restores.bot.map((r) => r.seconds)).toFixed(1)} s | | | ${(median(restores.bot.map((r) => r.seconds)) / pgbrR).toFixed(2)}× |`,
    `| pgBackRest restore --type=time + recovery | ${pgbrR.toFixed(1)} s | | | 1.00× |`,
    '',
    ...(['bot', 'pgbr'] as const).map(
      (k) =>
        `Restore phases, ${k}: lay out ${median(restores[k].map((r) => r.laySeconds)).toFixed(1)} s, recovery ${median(restores[k].map((r) => r.recoverySeconds)).toFixed(1)} s; its log, round 1: ${traceText(restores[k][0]?.trace ?? null)}.`,
    ),
    '',
    `Restored rows of pgbench_history: ${[...rows].join(', ')} (${rows.size === 1 ? 'the same in every restore' : 'DIFFERENT: the restores disagree'}); stopped at the target: ${[...restores.bot, ...restores.pgbr].every((r) => r.stoppedBefore)}.`,
    `RPO under load as the bot measures it: ${rpo}`,
    `WAL archiver resident memory: first ${archiverRss[0]?.toFixed(0)} MB, max ${Math.max(...archiverRss).toFixed(0)} MB, last ${archiverRss.at(-1)?.toFixed(0)} MB over ${archiverRss.length} samples.`,
  ];
  console.log(lines.join('\n'));
} finally {
  archiver?.kill('SIGTERM');
  await Promise.resolve(archiver).catch(() => undefined);
  await source.stop();
  if (!process.env.BENCH_KEEP) await rm(dir, { recursive: true, force: true });
}
