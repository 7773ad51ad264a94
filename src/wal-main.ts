import { walVerbEnv } from './config-env.ts';
import { isBotError, toUserMessage } from './errors.ts';

/**
 * The entry point of restore_command's verbs, `wal-fetch` (run by the recovering server once per WAL file) and
 * `wal-prefetch` (the reader ahead that wal-fetch starts). bin/pg-backup-bot.js loads this, not main.ts, for those
 * two: they need BACKUP_DIR and the identity file (and PGBB_WAL_PREFETCH), not the config, and main's imports (config schema, YAML, schedules, logger) cost
 * about 0.25 s of every start, which recovery waits for (bench:pitr: its first segment came 0.5 s after
 * pgBackRest's).
 */
async function main(argv: string[]): Promise<number> {
  const [verb, ...args] = argv;
  const io = { out: (l: string) => process.stdout.write(`${l}\n`), err: (l: string) => process.stderr.write(`${l}\n`) };
  const { cliWalFetch, cliWalPrefetch } = await import('./cli/wal-fetch-cli.ts');
  const deps = { ...walVerbEnv(process.env), io };
  if (verb === 'wal-fetch') return cliWalFetch(args, deps);
  if (verb === 'wal-prefetch') return cliWalPrefetch(args, deps);
  io.err(`Unknown command "${verb}": wal-main runs wal-fetch and wal-prefetch only.`);
  return 2;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`${toUserMessage(err)}\n`);
    if (!isBotError(err)) process.stderr.write(`${(err as Error)?.stack ?? String(err)}\n`);
    // For wal-fetch, any exit but 1 ("not archived") above 125 stops recovery (wal-fetch-cli.ts ABORT_RECOVERY).
    process.exit(process.argv[2] === 'wal-fetch' ? 126 : 1);
  },
);
