import { readFile, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import pg from 'pg';
import { actionTable, commandDepsFrom, commandTable, type CommandHandler } from '../commands/index.ts';
import { loadConfig } from '../config.ts';
import { generateKeyPair } from '../crypto/age.ts';
import { createDeps, type Deps } from '../deps.ts';
import { toUserMessage } from '../errors.ts';
import { createLogger } from '../logger.ts';
import { stderrLogDestination } from '../log-lines.ts';
import { ConsoleNotifier, plainText } from '../notifications/console-notifier.ts';
import { startWorkers } from '../workers/index.ts';
import { exitByHangup, isHangupError } from '../hangup.ts';
import { startEphemeralPostgres, startEphemeralRedis } from './ephemeral.ts';
import { DemoButtons } from './demo-buttons.ts';
import { deadline, removeParts, type DemoParts, waitForIdle } from './demo-parts.ts';
import { prepareDemoPitr } from './demo-pitr.ts';
import { reapAfterDeath } from './reaper.ts';

/** The slash commands, and the buttons of the last reply (a confirmation), clicked by typing their label. */
type Handlers = { commands: Record<string, CommandHandler>; buttons: DemoButtons };
const DEMO_USER = { userId: 'UDEMO', userName: process.env.USER ?? 'demo' };

/** How long an interrupted demo waits for its jobs and connections to close before it stops its servers anyway. */
const INTERRUPT_GRACE_MS = 15_000;

/**
 * At an interactive prompt, channel messages arrive while the user types: the line being typed is cleared, the
 * message printed, and the prompt redrawn with what was typed (readline's `prompt(true)`). Null otherwise.
 */
let atPrompt: { clear(): void; redraw(): void } | null = null;
const print = (line: string) => {
  atPrompt?.clear();
  process.stdout.write(`${line}\n`);
  atPrompt?.redraw();
};

/**
 * `npm run demo`: the whole bot on a throwaway PostgreSQL (with a sample database) and Redis, with this terminal
 * standing in for Slack. Type slash commands at the prompt; channel messages are printed as they are posted and
 * updated. Commands can also be given as arguments or piped in; then the demo waits for the jobs and exits.
 */
export async function runDemo(args: string[]): Promise<number> {
  const parts: DemoParts = { reapers: [] };
  let cleaning: Promise<void> | undefined;
  // Once interrupted, jobs and connections get INTERRUPT_GRACE_MS to close; then the servers are stopped regardless.
  const hurry = deadline(INTERRUPT_GRACE_MS);
  // Interrupted, running jobs are cancelled rather than waited for: a backup must not run on and report "succeeded"
  // after the person asked to stop (the CLI cancels its backup the same way). A second Ctrl-C during a normal exit,
  // which waits for them, cancels them too.
  const cleanup = (cancel: boolean) => {
    if (cancel) {
      parts.workers?.cancelRunning('the demo was interrupted');
      hurry.start();
    }
    cleaning ??= removeParts(parts, hurry.reached);
    return cleaning;
  };
  // Ctrl-C (at the prompt or while a job runs), a SIGTERM or a closed terminal (SIGHUP) still removes the throwaway
  // servers and files, the age identity among them: left behind, each demo would leave a PostgreSQL and a
  // redis-server running and a secret key on disk.
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals) => {
    interrupted = true;
    print(`\n${signal}: cleaning up the throwaway servers and backups…`);
    void cleanup(true).finally(() => (signal === 'SIGHUP' ? exitByHangup() : process.exit(130)));
  };
  // A fault nothing caught still stops the servers and removes the files before the demo ends.
  const onCrash = (err: unknown) => {
    print(`Demo failed: ${toUserMessage(err)}. Cleaning up the throwaway servers and backups…`);
    void cleanup(true).finally(() => process.exit(1));
  };
  // What the demo prints is best effort: a closed terminal (EIO) or pipe must not stop it before it has cleaned up.
  // main.ts's onOutputGone (hangup.ts), registered before this verb runs, drops the writes that fail.
  // `on`, not `once`: execa's signal-exit re-raises a signal that no other listener is left to handle.
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal);
  process.on('uncaughtException', onCrash);
  try {
    const { deps, handlers } = await startDemo(parts);
    const scripted = args.length > 0 || !process.stdin.isTTY;
    if (args.length > 0) {
      // One command at a time, each job finished before the next, so `/backup now` then `/backup list` reads naturally.
      for (const line of args) {
        await dispatch(handlers, line);
        await waitForIdle(deps);
      }
    } else {
      await prompt(handlers, scripted, onSignal);
    }
    if (scripted) await waitForIdle(deps);
    return 0;
  } catch (err) {
    // Interrupted, what was waiting on the servers fails as they stop: that is the stop asked for, not a failure of
    // the demo (QA: "Demo failed: Something unexpected…" after a Ctrl-C during a PITR restore test).
    if (!interrupted) process.stderr.write(`Demo failed: ${toUserMessage(err)}\n`);
    return interrupted ? 130 : 1;
  } finally {
    print('Cleaning up the throwaway servers and backups…');
    // The handlers stay until the servers are stopped: a signal now (the terminal's SIGHUP often comes just after its
    // read ended) hurries this same cleanup. Without a handler of ours, execa's signal-exit re-raises the signal and
    // the process dies on the spot, its PostgreSQL left running and its age identity on disk.
    await cleanup(false);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.off('SIGHUP', onSignal);
    process.off('uncaughtException', onCrash);
  }
}

/** Starts the servers, the sample database, the bot's dependencies and workers; records each in `parts` as it goes. */
async function startDemo(parts: DemoParts): Promise<{ deps: Deps; handlers: Handlers }> {
  print('Starting a throwaway PostgreSQL and Redis (nothing on this machine is touched)…');
  // Full-page writes on: the demo's cluster streams its WAL for point-in-time recovery (demo-pitr.ts).
  const [pgServer, redis] = await Promise.all([startEphemeralPostgres({ settings: { full_page_writes: 'on' } }), startEphemeralRedis()]);
  parts.pgServer = pgServer;
  parts.redis = redis;
  const dbUrl = await createSampleDatabase(pgServer.url);
  const backupDir = await mkdtemp(join(tmpdir(), 'pgbb-demo-backups-'));
  parts.backupDir = backupDir;
  parts.reapers.push(reapAfterDeath(['rm', '-rf', backupDir]));
  const { recipient, identityFile, configFile } = await writeDemoFiles(parts);
  const config = loadConfig(
    {
      BOT_CONFIG: configFile,
      SHOP_URL: dbUrl,
      // initdb's pg_hba.conf allows replication from 127.0.0.1: the superuser streams the WAL.
      SHOP_REPLICATION_URL: pgServer.url,
      REDIS_URL: redis.url,
      BACKUP_DIR: backupDir,
      BACKUP_ENCRYPTION_RECIPIENT: recipient,
      BACKUP_ENCRYPTION_IDENTITY_FILE: identityFile,
      SLACK_CHANNEL: '#incidents',
      LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
    },
    'offline',
  );
  // In a terminal, `warn: …` lines beside the replies instead of JSON with stack traces (log-lines.ts).
  const log = createLogger({ level: config.logLevel, destination: stderrLogDestination() });
  const deps = await createDeps(config, log, { notifier: new ConsoleNotifier(print, config.slack.channel) });
  parts.deps = deps;
  parts.workers = await startWorkers(deps, { progressIntervalMs: 1000 });
  // The same dependencies as the real bot's (service.ts): without `health`, `/backup health` never saw a run.
  // The demo has no checkboxes to tick (its messages are printed), so its commands get no notifier.
  const commandDeps = commandDepsFrom(deps, { notifier: false });
  const handlers: Handlers = { commands: commandTable(commandDeps), buttons: new DemoButtons(actionTable(commandDeps), DEMO_USER) };
  print(await prepareDemoPitr(config));
  print(`Ready. Sample database "shop" on ${pgServer.url.replace(/\/postgres$/, '/shop')}, backups in ${backupDir}.`);
  print(`Backups are encrypted with age to ${recipient}; restore tests read the identity ${identityFile}.`);
  print(
    'Type a slash command: /backup now · /restore-test pitr · /backup pre-migration JIRA-1 · /backup checklist daily · /backup status · /backup help · (exit or Ctrl-D to quit)',
  );
  return { deps, handlers };
}

/** The demo's age key pair and config file, in their own temp dir (recorded in `parts.keyDir` for cleanup). */
async function writeDemoFiles(parts: DemoParts): Promise<{ recipient: string; identityFile: string; configFile: string }> {
  // Backups are encrypted as in production: a throwaway age key pair whose secret half sits in its own 0700 temp
  // dir, removed on exit. In a real deployment the identity file lives only where restores run.
  const keyDir = await mkdtemp(join(tmpdir(), 'pgbb-demo-key-'));
  parts.keyDir = keyDir;
  parts.reapers.push(reapAfterDeath(['rm', '-rf', keyDir]));
  const keys = await generateKeyPair();
  const identityFile = join(keyDir, 'identity.key');
  await writeFile(identityFile, keys.identityFileText, { mode: 0o600 });
  // The demo's own (empty) config file. Without one, a pg-backup-bot.yml in the current directory would be read,
  // and its targets — real databases — would replace the sample one: `/backup now` would dump them, and start-up
  // would drop their servers' leftover restore-test databases, those of the real bot's running tests included.
  const configFile = join(keyDir, 'demo.yml');
  // No first backup at start: backups run when the person at the prompt asks, so a scripted run's output is theirs.
  const target =
    '  - name: shop\n    urlEnv: SHOP_URL\n    environment: production\n    pitr: { urlEnv: SHOP_REPLICATION_URL, markers: { everySeconds: 10 } }\n';
  // The person at the prompt is every role: a replacement (`/restore … --into=shop`, admins) can be tried too.
  const roles = `roles:\n  admin: [${DEMO_USER.userId}]\n`;
  await writeFile(configFile, `# npm run demo: the sample database is the one target, with PITR\nfirstBackupAtStart: false\n${roles}targets:\n${target}`);
  return { recipient: keys.recipient, identityFile, configFile };
}

async function createSampleDatabase(serverUrl: string): Promise<string> {
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  await admin.query('CREATE DATABASE shop');
  await admin.end();
  const url = serverUrl.replace(/\/postgres$/, '/shop');
  const db = new pg.Client({ connectionString: url });
  await db.connect();
  await db.query(await readFile(new URL('./sample-schema.sql', import.meta.url), 'utf8'));
  await db.end();
  return url;
}

/** `echo`: print the command as typed (arguments and piped input); a terminal has already shown it. */
async function dispatch(handlers: Handlers, line: string, echo = true): Promise<void> {
  const trimmed = line.trim();
  if (!trimmed) return;
  const [command = '', ...rest] = trimmed.split(/\s+/);
  if (echo) print(`\nyou> ${trimmed}`);
  const handler = handlers.commands[command];
  const reply = handler ? await handler({ text: rest.join(' '), ...DEMO_USER }) : await handlers.buttons.click(trimmed);
  if (!reply) {
    print(`  (only visible to you) Unknown command ${command}. Try ${Object.keys(handlers.commands).join(', ')}.`);
    return;
  }
  print(`  (only visible to you) ${plainText(reply.text).replace(/\n/g, '\n  ')}`);
  for (const button of handlers.buttons.offer(reply)) print(`  ${button}`);
  const later = await reply.later?.().catch((err: unknown) => ({ text: toUserMessage(err) }));
  if (later) print(`  (only visible to you) ${plainText(later.text).replace(/\n/g, '\n  ')}`);
}

async function prompt(handlers: Handlers, scripted: boolean, interrupt: (signal: NodeJS.Signals) => void): Promise<void> {
  const rl = createInterface({ input: process.stdin, output: process.stdout, prompt: scripted ? '' : 'you@#incidents> ', terminal: !scripted });
  // In a terminal, readline reads Ctrl-C as a key (raw mode: no signal is sent, and it would only pause): it is the
  // same interrupt as a SIGINT, running jobs cancelled. Ctrl-D and `exit` end the demo after its running jobs.
  rl.on('SIGINT', () => interrupt('SIGINT'));
  // While waiting for input (not while a command runs: its reply ends with a fresh prompt), output redraws the prompt.
  const waiting = scripted
    ? null
    : {
        clear: () => {
          process.stdout.write('\r\x1b[2K');
        },
        redraw: () => rl.prompt(true),
      };
  atPrompt = waiting;
  rl.prompt();
  try {
    for await (const line of rl) {
      if (/^(exit|quit)$/i.test(line.trim())) break;
      atPrompt = null;
      await dispatch(handlers, line, scripted);
      atPrompt = waiting;
      rl.prompt();
    }
  } catch (err) {
    if (!isHangupError(err)) throw err;
    // The terminal closed, and the read failed before (or instead of) its SIGHUP: the same hangup. The interrupt
    // cleans up and ends the process; returning would race it to exit.
    interrupt('SIGHUP');
    await new Promise<never>(() => undefined);
  }
  atPrompt = null;
  rl.close();
}
