/**
 * The bot's WAL archive as the worker runs it, alone in a process of its own so bench/pitr.ts can watch its
 * memory for the whole run: `node --import tsx bench/pitr-archiver.ts`, configured by the environment below,
 * stopped by SIGTERM (it archives what pg_receivewal completed, then exits).
 */
import { findAgeEngine } from '../src/crypto/age-cli.ts';
import { createLogger } from '../src/logger.ts';
import { PartialWalStore } from '../src/postgres/pitr/partial-store.ts';
import { startRpoMonitor } from '../src/postgres/pitr/rpo-monitor.ts';
import { startWalArchive } from '../src/postgres/pitr/wal-archive.ts';
import { LocalWalStore } from '../src/postgres/pitr/wal-store.ts';
import { findPgProgram, findPgTools, findZstd } from '../src/postgres/tools.ts';

const need = (name: string): string => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};

const tools = await findPgTools({ serverMajor: 10 });
const pgReceivewal = await findPgProgram('pg_receivewal', tools.pgDump, tools.major);
if (!pgReceivewal) throw new Error('pg_receivewal is not installed');
const common = {
  store: new LocalWalStore(need('BACKUP_DIR'), need('BENCH_TARGET')),
  zstd: await findZstd(),
  level: 2,
  recipients: [need('BACKUP_ENCRYPTION_RECIPIENT')],
  ageEngine: await findAgeEngine(),
  log: createLogger({ level: 'warn' }),
};
const archive = startWalArchive({
  ...common,
  target: need('BENCH_TARGET'),
  pgReceivewal,
  replicationUrl: need('BENCH_REPLICATION_URL'),
  slot: need('BENCH_SLOT'),
  spool: need('BENCH_SPOOL'),
});
// The RPO as the worker measures it (workers/wal-archives.ts starts the same monitor beside the archive), one line
// per reading on stdout for bench/pitr.ts.
const monitor = startRpoMonitor({
  ...common,
  target: need('BENCH_TARGET'),
  url: need('BENCH_URL'),
  slot: need('BENCH_SLOT'),
  spool: need('BENCH_SPOOL'),
  partials: new PartialWalStore(need('BACKUP_DIR'), need('BENCH_TARGET')),
  objectiveSeconds: 3600,
  newestArchived: () => archive.state().lastArchived?.name ?? null,
  receiverUp: () => archive.state().receiver.up,
  onState: (r) => {
    if (r.rpoMs !== undefined) process.stdout.write(`${JSON.stringify({ rpoMs: r.rpoMs, at: r.measuredAt })}\n`);
  },
});
process.stdout.write('started\n');
process.once('SIGTERM', () => {
  void monitor
    .stop()
    .then(() => archive.stop())
    .then(() => process.exit(0));
});
