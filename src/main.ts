import { ignoredDatabaseUrl, loadConfig } from './config.ts';
import { isBotError, toUserMessage } from './errors.ts';
import { createLogger } from './logger.ts';
import { stderrLogDestination } from './log-lines.ts';
import { exitByHangup, onOutputGone } from './hangup.ts';

// Each verb imports what it needs: the CLI should not pay for loading Bolt and BullMQ (time and memory).

const USAGE = `pg-backup-bot — PostgreSQL backups run from Slack

  pg-backup-bot init           first run: writes pg-backup-bot.yml and an age key pair, prints what to set next
  pg-backup-bot all            bot + workers (what \`npm start\` runs; the workers in a child process it restarts)
  pg-backup-bot bot            only the Slack side (commands, acks)
  pg-backup-bot worker         only the workers (backups, pages); run more on other hosts
  pg-backup-bot demo           everything on a throwaway PostgreSQL and Redis, Slack replaced by this terminal
  pg-backup-bot backup [target]  take a backup now in the foreground (for when Slack is down)
  pg-backup-bot list [target]    list finished backups, newest first
  pg-backup-bot check [target]   health conditions as a Nagios plugin (exit 0 OK, 1 warning, 2 critical)
  pg-backup-bot restore-test [target|backup-id]   restore into a scratch database and compare (exit 0 pass, 1 fail)
  pg-backup-bot restore <backup-id>   the whole database into a new database, verified like a restore test
  pg-backup-bot restore <backup-id> --table=… [--schema=…] [--into=<db> --yes]   selective restore
  pg-backup-bot fetch <backup-id> [--globals] [-o FILE|-]   the plain pg_dump archive (or roles SQL), checked, for a hand-run pg_restore
  pg-backup-bot retention [--dry-run]   delete expired and unfinished backups (primary and copies) and report
  pg-backup-bot scrub [--all]   read stored backups and the point-in-time archive back against their checksums (what the daily run reads, or all)
  pg-backup-bot base-backup [target]   a base backup for point-in-time recovery (targets with a pitr section)
  pg-backup-bot restore-pitr <target> --time="…+01" --data-dir=DIR   lay out a cluster recovering to that moment
  pg-backup-bot --version      the version

Configuration is by environment variables: see README.md.`;

/** Aborted when nobody reads the output any more (hangup.ts onOutputGone): the foreground verbs stop and clean up. */
const outputGone = new AbortController();

async function main(argv: string[]): Promise<number> {
  const [verb = 'all', ...args] = argv;
  onOutputGone(() => outputGone.abort());
  switch (verb) {
    case 'all':
    case 'bot':
    case 'worker':
      return runService(verb);
    case 'demo': {
      const { runDemo } = await import('./dev/demo.ts');
      return runDemo(args);
    }
    case 'check':
      // Nagios reads stdout and the exit code: a check that cannot start is UNKNOWN (3) with why, not a silent 1 (QA).
      return runCli(verb, args).catch((err: unknown) => {
        process.stdout.write(
          `UNKNOWN config: ${toUserMessage(err)
            .replace(/:?\n\s*[-•]?\s*/g, '; ')
            .replace(/; ;/g, ';')}\n`,
        );
        return 3;
      });
    case 'backup':
    case 'list':
    case 'restore-test':
    case 'restore':
    case 'fetch':
      return runCli(verb, args);
    case 'retention':
    case 'scrub':
      return runRetention(args, verb);
    case 'restore-pitr': {
      // No DATABASE_URL: the server being recovered is not reachable yet, and may be the thing that is gone.
      const config = loadConfig(process.env, 'offline');
      const { cliRestorePitr } = await import('./cli/pitr-cli.ts');
      const stop = cancelOnSignals();
      return stop.exitCode(await cliRestorePitr(args, { config, io: cliIo(), signal: stop.signal }));
    }
    // restore_command's verbs, wal-fetch and wal-prefetch, have an entry point of their own: wal-main.ts, which
    // bin/pg-backup-bot.js loads instead of this module for them.
    case 'base-backup': {
      const config = loadConfig(process.env, 'cli');
      const { cliBaseBackup } = await import('./cli/base-backup-cli.ts');
      const abort = new AbortController();
      process.on('SIGINT', () => abort.abort());
      process.on('SIGTERM', () => abort.abort());
      outputGone.signal.addEventListener('abort', () => abort.abort());
      return cliBaseBackup(args, { config, io: cliIo(), signal: abort.signal });
    }
    case 'init': {
      // No config yet: init is what writes it.
      const { cliInit } = await import('./cli/init-cli.ts');
      return cliInit(args, { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t), stdin: process.stdin });
    }
    case '--version':
    case '-V':
    case 'version':
      process.stdout.write(`pg-backup-bot ${await packageVersion()}\n`);
      return 0;
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(`${USAGE}\n`);
      return 0;
    default:
      process.stderr.write(`Unknown command "${verb}".\n\n${USAGE}\n`);
      return 2;
  }
}

/** `all`, `bot`, `worker`: runs until SIGTERM or SIGINT, then stops gracefully. */
async function runService(verb: 'all' | 'bot' | 'worker'): Promise<number> {
  const config = loadConfig(process.env, verb);
  // Each key parsed as age parses it, not only its shape: a mistyped one stops start-up (QA: found by the first backup).
  if (config.encryption.recipients.length > 0) (await import('./crypto/age.ts')).checkRecipients(config.encryption.recipients);
  const log = createLogger({ level: config.logLevel });
  const ignored = ignoredDatabaseUrl(process.env, config);
  if (ignored && process.env.PGBB_SUPERVISED !== '1') {
    process.stderr.write(`Note: ${ignored}\n`);
    log.warn({ configFile: config.configFile }, ignored);
  }
  const { runSupervised, runSupervisedChild, untilStopSignal } = await import('./service-run.ts');
  // `all` = this process answers Slack and supervises a worker child (worker-supervisor.ts says why).
  if (verb === 'all') return runSupervised(config, log);
  // PGBB_SUPERVISED alone decides: a child whose parent died before it got here has no IPC channel left, and must
  // stop rather than run on as a plain worker.
  if (verb === 'worker' && process.env.PGBB_SUPERVISED === '1') return runSupervisedChild(config, log);
  const { startService } = await import('./service.ts');
  const service = await startService(config, log, verb);
  await untilStopSignal(log, () => service.stop());
  return 0;
}

// CLI logs go to stderr, errors only by default: the person at the terminal reads the progress lines instead. On a
// terminal they are lines, not JSON (log-lines.ts).
const cliLog = () => createLogger({ level: process.env.LOG_LEVEL ?? 'error', destination: stderrLogDestination() });
const cliIo = () => ({
  out: (l: string) => process.stdout.write(`${l}\n`),
  err: (l: string) => process.stderr.write(`${l}\n`),
  tty: Boolean(process.stderr.isTTY),
});

/** The verbs that read or write backups in the foreground; those that run pg tools stop them on a signal. */
async function runCli(verb: 'backup' | 'list' | 'restore-test' | 'restore' | 'fetch' | 'check', args: string[]): Promise<number> {
  // list and fetch read storage only: no DATABASE_URL needed (the database may be the thing that is gone).
  const config = loadConfig(process.env, verb === 'list' || verb === 'fetch' ? 'offline' : 'cli');
  const log = cliLog();
  const ignored = ignoredDatabaseUrl(process.env, config);
  if (ignored) process.stderr.write(`Note: ${ignored}\n`);
  const [{ createStorageFromConfig }, { cliBackup, cliList }] = await Promise.all([import('./storage/index.ts'), import('./cli/backup-cli.ts')]);
  const { primary: storage, copies } = await createStorageFromConfig(config, log);
  const io = cliIo();
  if (verb === 'list') return cliList(args, { config, storage, io });
  if (verb === 'check') {
    const { cliCheck } = await import('./cli/check-cli.ts');
    return cliCheck(args, { config, redisUrl: redisUrlIfSet(config), storage, io });
  }
  const abort = new AbortController();
  // `on`, not `once` (see runService): a re-raised signal would kill the CLI before it removed the partial backup.
  // SIGHUP (the terminal closed) too: hangup.ts.
  process.on('SIGINT', () => abort.abort());
  process.on('SIGTERM', () => abort.abort());
  outputGone.signal.addEventListener('abort', () => abort.abort());
  process.on('SIGHUP', () => {
    hungUp = true;
    abort.abort();
  });
  if (verb === 'fetch') {
    const { cliFetch } = await import('./cli/fetch-cli.ts');
    return cliFetch(args, { config, storage, log, io, signal: abort.signal });
  }
  if (verb === 'backup') return cliBackup(args, { config, redisUrl: redisUrlIfSet(config), storage, copies, log, io, signal: abort.signal });
  const [{ cliRestore }, { cliRestoreTest }] = await Promise.all([import('./cli/restore-cli.ts'), import('./cli/restore-test-cli.ts')]);
  if (verb === 'restore-test') return cliRestoreTest(args, { config, storage, log, io, signal: abort.signal, redisUrl: redisUrlIfSet(config) });
  return cliRestore(args, { config, storage, log, io, signal: abort.signal, redisUrl: redisUrlIfSet(config) });
}

/**
 * Ctrl-C, SIGTERM, a closed terminal (SIGHUP) or a reader gone abort the verb, which stops its tools and keeps
 * nothing; a verb that then fails ends as the shell expects of that signal: 130 after SIGINT, 143 after SIGTERM.
 */
function cancelOnSignals(): { signal: AbortSignal; exitCode(code: number): number } {
  const abort = new AbortController();
  let by: NodeJS.Signals | undefined;
  for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const)
    process.on(s, () => {
      by ??= s;
      if (s === 'SIGHUP') hungUp = true;
      abort.abort();
    });
  outputGone.signal.addEventListener('abort', () => abort.abort());
  return { signal: abort.signal, exitCode: (code) => (code === 0 ? 0 : by === 'SIGINT' ? 130 : by === 'SIGTERM' ? 143 : code) };
}

/** Storage and Redis only: no Slack, no DATABASE_URL (a backup is deleted, or read back, by what its manifest says). */
async function runRetention(args: string[], verb: 'retention' | 'scrub'): Promise<number> {
  const config = loadConfig(process.env, 'offline');
  const log = cliLog();
  const [{ createStorageFromConfig }, { cliRetention }, { cliScrub }] = await Promise.all([
    import('./storage/index.ts'),
    import('./cli/retention-cli.ts'),
    import('./cli/scrub-cli.ts'),
  ]);
  const { primary, copies } = await createStorageFromConfig(config, log);
  const deps = { config, redisUrl: redisUrlIfSet(config), log, io: cliIo() };
  // Ctrl-C stops a retention run between two deletions, said and recorded as canceled (never killed mid-delete).
  if (verb === 'scrub') return cliScrub(args, { ...deps, storage: primary, copies });
  const stop = cancelOnSignals();
  // A second Ctrl-C ends it at once, where the run has no point to stop at (a long S3 listing, the PITR archive's
  // deletions): the first one never leaves it unstoppable (second reader).
  let signals = 0;
  for (const s of ['SIGINT', 'SIGTERM'] as const) process.on(s, () => ++signals > 1 && process.exit(s === 'SIGINT' ? 130 : 143));
  return stop.exitCode(await cliRetention(args, { ...deps, primary, copies, signal: stop.signal }));
}

/** The CLI asks Redis only when REDIS_URL says which: the default, 127.0.0.1:6379, may be another application's. */
const redisUrlIfSet = (config: { redisUrl: string }) => (process.env.REDIS_URL ? config.redisUrl : null);

/**
 * The version in the package.json this code came with: found by walking up from this module, which is
 * src/main.ts in a checkout, dist/main.js or dist/bundle/main.js once built, the same in an installed package.
 */
async function packageVersion(): Promise<string> {
  const { readFile } = await import('node:fs/promises');
  let dir = new URL('.', import.meta.url);
  for (let up = 0; up < 4; up++, dir = new URL('..', dir)) {
    const text = await readFile(new URL('package.json', dir), 'utf8').catch(() => null);
    const pkg = text === null ? null : (JSON.parse(text) as { name?: string; version?: string });
    if (pkg?.name === 'pg-backup-bot' && pkg.version) return pkg.version;
  }
  return 'unknown';
}

/** Set on SIGHUP: once the work is cleaned up, the process ends by that signal, as it would have without a handler. */
let hungUp = false;

main(process.argv.slice(2)).then(
  (code) => (hungUp ? exitByHangup() : process.exit(code)),
  (err: unknown) => {
    process.stderr.write(`${toUserMessage(err)}\n`);
    if (!isBotError(err)) process.stderr.write(`${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(1);
  },
);
