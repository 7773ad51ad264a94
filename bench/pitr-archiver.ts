/**
 * The bot's WAL archive as the worker runs it, alone in a process of its own so bench/pitr.ts can watch its
 * memory for the whole run: `node --import tsx bench/pitr-archiver.ts`, configured by the environment below,
 * stopped by SIGTERM (it archives what pg_receivewal completed, then exits).
 */
import { findAgeEngine } from '../src/crypto/age-cli.ts';
import { createLogger } from '../src/logger.ts';
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
const archive = startWalArchive({
  target: need('BENCH_TARGET'),
  pgReceivewal,
  replicationUrl: need('BENCH_REPLICATION_URL'),
  slot: need('BENCH_SLOT'),
  spool: need('BENCH_SPOOL'),
  store: new LocalWalStore(need('BACKUP_DIR'), need('BENCH_TARGET')),
  zstd: await findZstd(),
  level: 2,
  recipients: [need('BACKUP_ENCRYPTION_RECIPIENT')],
  ageEngine: await findAgeEngine(),
  log: createLogger({ level: 'warn' }),
  onState: (s) => {
    if (s.receiver.up && s.lastArchived) process.stdout.write(`${JSON.stringify({ lastArchived: s.lastArchived.name, at: s.lastArchived.at })}\n`);
  },
});
process.stdout.write('started\n');
process.once('SIGTERM', () => {
  void archive.stop().then(() => process.exit(0));
});
