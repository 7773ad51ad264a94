import { access, mkdir, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { createInterface } from 'node:readline/promises';
import type { Readable } from 'node:stream';
import { generateKeyPair } from '../crypto/age.ts';
import { TimeOfDay, TimeZone } from '../schedules/config-schema.ts';
import { TargetName } from '../target-name.ts';

/**
 * `pg-backup-bot init`: the first run. Asks for (or takes as flags) the target, its environment, when it is
 * backed up and the time zone; writes `pg-backup-bot.yml` and an age key pair, and prints the environment to
 * set and the commands to run next. Never overwrites a key; overwrites the config file only with --force.
 */
export interface InitAnswers {
  target: string;
  environment: 'production' | 'staging';
  urlEnv: string;
  backupAt: string;
  timezone: string;
}

const USAGE =
  'usage: pg-backup-bot init [--target=NAME] [--environment=production|staging] [--url-env=VAR] [--backup-at=HH:MM] [--timezone=ZONE] [--dir=DIR] [--key=FILE] [--force] [--ask]';

interface Io {
  out(text: string): void;
  err(text: string): void;
  stdin: Readable & { isTTY?: boolean };
}

type Flags = Partial<Record<'target' | 'environment' | 'url-env' | 'backup-at' | 'timezone' | 'dir' | 'key', string>> & { force: boolean; ask: boolean };

function parseFlags(args: string[]): Flags | string {
  const flags: Flags = { force: false, ask: false };
  for (const a of args) {
    if (a === '--force' || a === '--ask') {
      flags[a.slice(2) as 'force' | 'ask'] = true;
      continue;
    }
    const m = /^--(target|environment|url-env|backup-at|timezone|dir|key)=(.*)$/.exec(a);
    if (!m) return `"${a}" is not an option of init.\n${USAGE}`;
    flags[m[1] as keyof Omit<Flags, 'force' | 'ask'>] = m[2] as string;
  }
  return flags;
}

/** Each answer checked by the schema the config file is read with, so what init writes, the bot accepts. */
const CHECKS: Record<keyof InitAnswers, (v: string) => string | null> = {
  target: (v) => (TargetName.safeParse(v).success ? null : 'a target name is 1–48 characters: lowercase letters, digits, - and _, starting with a letter'),
  environment: (v) => (v === 'production' || v === 'staging' ? null : 'production or staging'),
  urlEnv: (v) => (/^[A-Z_][A-Z0-9_]*$/.test(v) ? null : 'the name of an environment variable, e.g. SHOP_DATABASE_URL'),
  backupAt: (v) => (TimeOfDay.safeParse(v).success ? null : 'a time of day as HH:MM, 24-hour'),
  timezone: (v) => (TimeZone.safeParse(v).success ? null : 'an IANA time zone such as Europe/Paris or UTC'),
};

const QUESTIONS: Array<[keyof InitAnswers, string, (a: Partial<InitAnswers>) => string]> = [
  ['target', 'Name of the database to back up (the target)', () => 'main'],
  ['environment', 'Environment: production (daily + every 6 h, encrypted) or staging (weekly)', () => 'production'],
  ['urlEnv', 'Environment variable that will hold its connection URL', (a) => `${(a.target ?? 'main').toUpperCase().replace(/-/g, '_')}_DATABASE_URL`],
  ['backupAt', 'Time of the main backup (HH:MM)', () => '02:00'],
  ['timezone', 'Time zone of the schedules', () => 'UTC'],
];

async function answers(flags: Flags, io: Io): Promise<InitAnswers | string> {
  const given: Partial<Record<keyof InitAnswers, string | undefined>> = {
    target: flags.target,
    environment: flags.environment,
    urlEnv: flags['url-env'],
    backupAt: flags['backup-at'],
    timezone: flags.timezone,
  };
  const ask = flags.ask || io.stdin.isTTY === true;
  const rl = ask ? createInterface({ input: io.stdin, terminal: false }) : null;
  const lines = rl?.[Symbol.asyncIterator]();
  const a: Partial<InitAnswers> = {};
  try {
    for (const [key, question, fallback] of QUESTIONS) {
      let value = given[key];
      while (value === undefined) {
        if (!lines) {
          value = fallback(a);
          break;
        }
        io.err(`${question} [${fallback(a)}]: `);
        const next = await lines.next();
        const typed = next.done ? '' : String(next.value).trim();
        const candidate = typed === '' ? fallback(a) : typed;
        const problem = CHECKS[key](candidate);
        if (problem === null) value = candidate;
        else if (next.done) return `${key}: ${problem}`;
        else io.err(`  ${problem}\n`);
      }
      const problem = CHECKS[key](value);
      if (problem) return `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}=${value}: ${problem}`;
      (a as Record<string, string>)[key] = key === 'timezone' ? String(TimeZone.parse(value)) : value;
    }
  } finally {
    rl?.close();
  }
  return a as InitAnswers;
}

/** The config file init writes: the target, its main backup's time, and age encryption. */
export function initConfigText(a: InitAnswers, now: Date): string {
  const [hh, mm] = a.backupAt.split(':').map(Number) as [number, number];
  const main = a.environment === 'production' ? `daily: { cron: '${mm} ${hh} * * *' }` : `weekly: { cron: '${mm} ${hh} * * 0' }`;
  return [
    `# pg-backup-bot.yml, written by \`pg-backup-bot init\` on ${now.toISOString().slice(0, 10)}. Every key: README.md, "Config file".`,
    `timezone: ${a.timezone}`,
    '# Every backup is encrypted to BACKUP_ENCRYPTION_RECIPIENT (age); the bot refuses to start without it.',
    'encryption: age',
    'targets:',
    `  - name: ${a.target}`,
    `    urlEnv: ${a.urlEnv}`,
    `    environment: ${a.environment}`,
    '    schedules:',
    '      backups:',
    `        ${main}`,
    '',
  ].join('\n');
}

const exists = (path: string) =>
  access(path).then(
    () => true,
    () => false,
  );

export async function cliInit(args: string[], io: Io, now = new Date()): Promise<number> {
  const flags = parseFlags(args);
  if (typeof flags === 'string') {
    io.err(`${flags}\n`);
    return 2;
  }
  const dir = resolve(flags.dir ?? '.');
  const configFile = resolve(dir, 'pg-backup-bot.yml');
  const keyFile = resolve(dir, flags.key ?? 'pg-backup-bot.key');
  if ((await exists(configFile)) && !flags.force) {
    io.err(`${configFile} exists already: nothing written (--force overwrites the config file; a key is never overwritten).\n`);
    return 1;
  }
  if (await exists(keyFile)) {
    io.err(`${keyFile} exists already: init never overwrites a key (backups made to it could no longer be read). Name another with --key=FILE.\n`);
    return 1;
  }
  const a = await answers(flags, io);
  if (typeof a === 'string') {
    io.err(`${a}\n${USAGE}\n`);
    return 2;
  }
  const keys = await generateKeyPair();
  for (const d of new Set([dir, dirname(keyFile)])) await mkdir(d, { recursive: true });
  // wx: a key that appeared meanwhile is not overwritten either.
  await writeFile(keyFile, keys.identityFileText, { mode: 0o600, flag: 'wx' });
  await writeFile(configFile, initConfigText(a, now), { mode: 0o644 });
  io.out(initSummary(a, { configFile, keyFile, recipient: keys.recipient }));
  return 0;
}

function initSummary(a: InitAnswers, f: { configFile: string; keyFile: string; recipient: string }): string {
  const when = a.environment === 'production' ? `daily at ${a.backupAt} and every 6 hours` : `weekly, Sundays at ${a.backupAt}`;
  return `Wrote ${f.configFile}: target ${a.target} (${a.environment}), backed up ${when} (${a.timezone}).
Made an age key pair. The secret key is ${f.keyFile} (mode 0600); its public key is ${f.recipient}.

  KEEP A SECOND COPY OF THIS KEY SOMEWHERE SAFE (a password manager, a safe), away from this machine and
  from the backups. Every backup is encrypted to it: without it, no backup can ever be read, by anyone.

Set these where the bot and its workers run (a systemd EnvironmentFile, your secrets manager; each line as it
is: an EnvironmentFile keeps anything after the = as the value):
  BOT_CONFIG=${f.configFile}
  ${a.urlEnv}=postgres://USER:PASSWORD@HOST:5432/DBNAME
  BACKUP_ENCRYPTION_RECIPIENT=${f.recipient}
  BACKUP_ENCRYPTION_IDENTITY_FILE=${f.keyFile}
  BACKUP_DIR=/var/lib/pg-backup-bot/backups
  REDIS_URL=redis://127.0.0.1:6379
and the Slack tokens: SLACK_BOT_TOKEN=xoxb-… with SLACK_SIGNING_SECRET=… (or SLACK_APP_TOKEN=xapp-… for Socket
Mode), docs/slack-install.md. BACKUP_DIR above is a suggestion: where the backups go, best a disk of its own
(--dir chose where this config file and the key were written, not the backups). Every worker reads the identity file (restore tests run there); backups can go to
S3 instead of BACKUP_DIR (README.md, "Environment"); deploy/systemd/ has units and an example environment file.

Then:
${[
  [`npx pg-backup-bot backup ${a.target}`, 'a first backup, in the foreground'],
  [`npx pg-backup-bot restore-test ${a.target}`, 'prove that it restores'],
  ['npm start', 'the bot and its workers'],
]
  .map(([cmd, why], _i, all) => `  ${(cmd as string).padEnd(Math.max(...all.map(([c]) => (c as string).length)) + 2)}# ${why}`)
  .join('\n')}
`;
}
