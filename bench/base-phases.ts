/**
 * `npm run bench:base-phases`: where the bot's base backup spends its time beyond the floor (issue 15). On the
 * ≥ 500 MB bench database, alternating over BENCH_ROUNDS rounds (default 2), each leg after a checkpoint and with
 * caches dropped:
 *   - the floor: `pg_basebackup -Ft -X none -D - | zstd -T0 -2 > file`;
 *   - the floor encrypted: the same `| age -r … > file`; then with the tap alone (coreutils' tee and tail, or the
 *     bot's perl tap), and with the hash of the stored bytes alone, added in the shell (what each piece costs);
 *   - the bot's run alone (runBaseBackup, in this process), with its perl tap and with the coreutils one, then its
 *     read-back alone (verifyStoredBaseBackup);
 *   - the bot's CLI (`pg-backup-bot base-backup`): start-up, run and read-back together.
 * Never run it beside the test suite or another benchmark.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { findAgeEngine } from '../src/crypto/age-cli.ts';
import { generateKeyPair } from '../src/crypto/age.ts';
import { STAGE_PROGRAM } from '../src/postgres/backup/perl-stages.ts';
import { startEphemeralPostgres } from '../src/dev/ephemeral.ts';
import { runBaseBackup } from '../src/postgres/pitr/base-backup.ts';
import { verifyStoredBaseBackup } from '../src/postgres/pitr/take-base-backup.ts';
import { findPgProgram, findPgTools } from '../src/postgres/tools.ts';
import { buildDataset, client } from './dataset.ts';
import { dropCaches, fsyncAll, median } from './measure.ts';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 2));
const SCALE = Number(process.env.BENCH_SCALE ?? 1);
const log = (m: string) => console.error(m);

const dir = await mkdtemp(join(tmpdir(), 'pgbb-bench-base-'));
const source = await startEphemeralPostgres({ settings: { full_page_writes: 'on', max_wal_size: '2GB', shared_buffers: '256MB' } });
try {
  log(`building the bench database (scale ${SCALE}) …`);
  const dbUrl = await buildDataset(source.url, 'bench', SCALE, log);
  const keys = await generateKeyPair();
  await writeFile(join(dir, 'key.txt'), keys.identityFileText, { mode: 0o600 });
  const root = join(dir, 'bot');
  await mkdir(root);
  await writeFile(
    join(dir, 'bot.yml'),
    'encryption: age\ntargets:\n  - name: bench\n    urlEnv: BENCH_URL\n    environment: production\n    pitr:\n      urlEnv: BENCH_REPL_URL\n',
  );
  const botEnv = {
    PATH: process.env.PATH ?? '',
    BOT_CONFIG: join(dir, 'bot.yml'),
    BACKUP_DIR: root,
    BENCH_URL: dbUrl,
    BENCH_REPL_URL: source.url,
    BACKUP_ENCRYPTION_RECIPIENT: keys.recipient,
    LOG_LEVEL: 'warn',
  };
  const tools = await findPgTools({ serverMajor: 15 });
  const pgBasebackup = (await findPgProgram('pg_basebackup', tools.pgDump, tools.major)) as string;
  const ageEngine = await findAgeEngine();
  const agePath = ageEngine?.kind === 'cli' ? ageEngine.path : 'age';
  const pgEnv = { PGHOST: source.dir, PGPORT: String(source.port), PGUSER: 'postgres', PATH: process.env.PATH ?? '' };
  const prepare = async () => {
    const c = client(source.url);
    await c.connect();
    await c.query('checkpoint').finally(() => c.end());
    await dropCaches();
  };
  const timed = async (run: () => Promise<unknown>) => {
    await prepare();
    const t0 = performance.now();
    await run();
    return (performance.now() - t0) / 1000;
  };
  // The floor, and the floor with each piece of the bot's chain added in the shell: age; the tap (the raw tar through
  // `tee` into a named pipe read by `tail -c 64K`, as the bot reads backup_manifest's WAL range); the stored bytes
  // through `tee FILE | openssl dgst -sha256` (the bot's hash of what it stores). What each costs on its own.
  const pipe = async (variant: 'bare' | 'age' | 'tap' | 'perl' | 'hash', round: number) => {
    const withAge = variant !== 'bare';
    const file = join(dir, `bare-${round}.tar.zst${withAge ? '.age' : ''}`);
    const fifo = join(dir, `tap-${round}`);
    const age = withAge ? ` | "${agePath}" -r "${keys.recipient}"` : '';
    const base = `"${pgBasebackup}" -Ft -X none -D - --checkpoint=fast`;
    const script = {
      bare: `${base} | zstd -T0 -2 -q > "${file}"`,
      age: `${base} | zstd -T0 -2 -q${age} > "${file}"`,
      tap: `mkfifo -m 0600 "${fifo}"; tail -c 65536 "${fifo}" > /dev/null & ${base} | tee "${fifo}" | zstd -T0 -2 -q${age} > "${file}"; s=$?; wait; exit $s`,
      // The program from the environment: it is not quoted into the script.
      perl: `${base} | perl -e "$TAP" -- 65536 '' 3> /dev/null | zstd -T0 -2 -q${age} > "${file}"`,
      hash: `${base} | zstd -T0 -2 -q${age} | tee "${file}" | openssl dgst -sha256 -r > /dev/null`,
    }[variant];
    const s = await timed(async () => {
      await execa('bash', ['-o', 'pipefail', '-c', script], { env: { ...pgEnv, TAP: STAGE_PROGRAM } });
      await fsyncAll([file]);
    });
    await rm(file, { force: true });
    await rm(fifo, { force: true });
    return s;
  };
  const legs: Record<string, number[]> = {
    floor: [],
    'floor + age': [],
    'floor + age + tap (tee, tail)': [],
    'floor + age + tap (perl)': [],
    'floor + age + tee FILE | openssl': [],
    'bot run': [],
    'bot run, tap (tee, tail)': [],
    'bot read-back': [],
    'bot CLI': [],
  };
  for (let round = 0; round < ROUNDS; round++) {
    legs.floor?.push(await pipe('bare', round));
    legs['floor + age']?.push(await pipe('age', round));
    legs['floor + age + tap (tee, tail)']?.push(await pipe('tap', round));
    legs['floor + age + tap (perl)']?.push(await pipe('perl', round));
    legs['floor + age + tee FILE | openssl']?.push(await pipe('hash', round));
    let made: Awaited<ReturnType<typeof runBaseBackup>> | undefined;
    const botRun = (into: string, perl?: null) =>
      runBaseBackup({
        target: 'bench',
        root: into,
        replicationUrl: source.url,
        pgBasebackup,
        zstd: 'zstd',
        level: 2,
        recipients: [keys.recipient],
        ageEngine,
        ...(perl === null ? { perl } : {}),
      });
    legs['bot run']?.push(
      await timed(async () => {
        made = await botRun(root);
      }),
    );
    legs['bot run, tap (tee, tail)']?.push(await timed(() => botRun(join(dir, 'bot-tee'), null)));
    await rm(join(dir, 'bot-tee'), { recursive: true, force: true });
    await dropCaches();
    const t0 = performance.now();
    if (made) await verifyStoredBaseBackup(root, made);
    legs['bot read-back']?.push((performance.now() - t0) / 1000);
    legs['bot CLI']?.push(await timed(() => execa(process.execPath, [join(repoRoot, 'bin/pg-backup-bot.js'), 'base-backup', 'bench'], { env: botEnv })));
    await rm(join(root, 'bench', '_base'), { recursive: true, force: true });
    log(
      `  round ${round + 1}: ${Object.entries(legs)
        .map(([k, v]) => `${k} ${v.at(-1)?.toFixed(2)} s`)
        .join(', ')}`,
    );
  }
  console.log('| Leg | Median time |\n|---|---|');
  for (const [k, v] of Object.entries(legs)) console.log(`| ${k} | ${median(v).toFixed(2)} s |`);
} finally {
  await source.stop();
  await rm(dir, { recursive: true, force: true });
}
