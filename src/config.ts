import { existsSync } from 'node:fs';
import { assembleConfig } from './config-assemble.ts';
import { parseEnv, PostgresUrl, withoutEmpty, type RawEnv } from './config-env.ts';
import { readFileConfig } from './config-file.ts';
import { resolveTargets } from './config-targets.ts';
import type { Config, Mode, TargetConfig } from './config-types.ts';
import { ENCRYPTION_ADVICE } from './crypto/advice.ts';
import { BotError } from './errors.ts';

// The module everyone imports: the env contract (config-env.ts), the Config type (config-types.ts), targets
// (config-targets.ts) and assembly (config-assemble.ts) live apart, and what callers use is re-exported here.
export type { Config, Mode, TargetConfig } from './config-types.ts';
export { defaultTarget, findTarget, targetNameFromUrl } from './config-targets.ts';

type FileRead = ReturnType<typeof readFileConfig>;

/**
 * Parses the environment once, at the entry point. Every problem is listed at once; values are never echoed,
 * since most of these variables are secrets.
 */
export function loadConfig(env: RawEnv, mode: Mode = 'all'): Config {
  const cleaned = withoutEmpty(env);
  const parsed = parseEnv(cleaned);
  const problems = [...parsed.problems, ...slackProblems(cleaned, mode)];
  const file = readFileConfig(cleaned.BOT_CONFIG);
  problems.push(...file.problems, ...targetProblems(cleaned, file, mode), ...encryptionProblems(cleaned, file));
  // A directory that is not there was passed over for the tools found elsewhere, unsaid (QA): refused where tools run
  // (not `list`, `fetch`, retention or a Slack-only bot: a recovery host given an old env file must still list).
  if (cleaned.PG_BIN_DIR && mode !== 'offline' && mode !== 'bot' && !existsSync(cleaned.PG_BIN_DIR))
    problems.push('PG_BIN_DIR: names a directory that does not exist: the PostgreSQL client tools (pg_dump, pg_restore, psql) are looked for there');
  const targets = problems.length > 0 || !parsed.env ? [] : resolveTargets(file.config.targets, cleaned, parsed.env, file.config.restoreTest.verify);
  problems.push(...unencryptedProduction(targets, cleaned, file, mode));
  if (problems.length > 0 || !parsed.env) {
    throw new BotError(
      'config_invalid',
      `pg-backup-bot cannot start; fix these settings (environment variables and the config file):\n${problems.map((p) => `  - ${p}`).join('\n')}`,
    );
  }
  return { ...assembleConfig(parsed.env, file.config, targets), configFile: file.path };
}

/**
 * A service whose production targets have no key to encrypt to would refuse every scheduled backup
 * (backup-encryption.ts): it does not start. The CLI still starts, and its backup says the same sentence.
 */
function unencryptedProduction(targets: TargetConfig[], cleaned: RawEnv, file: Pick<FileRead, 'config'>, mode: Mode): string[] {
  if (mode !== 'all' && mode !== 'bot' && mode !== 'worker') return [];
  if (cleaned.BACKUP_ENCRYPTION_RECIPIENT || file.config.encryption === 'none') return [];
  const production = targets.filter((t) => t.environment === 'production').map((t) => t.name);
  if (production.length === 0) return [];
  return [`BACKUP_ENCRYPTION_RECIPIENT: required, or every backup of ${production.join(', ')} (production) would be refused: ${ENCRYPTION_ADVICE}`];
}

/** The bot and the workers post to Slack; only the bot receives from it (HTTP or Socket Mode). */
function slackProblems(cleaned: RawEnv, mode: Mode): string[] {
  const problems: string[] = [];
  if (mode !== 'all' && mode !== 'bot' && mode !== 'worker') return problems;
  if (!cleaned.SLACK_BOT_TOKEN) {
    problems.push('SLACK_BOT_TOKEN: required (xoxb-…); `npm run demo` runs without Slack');
  }
  if (mode !== 'worker' && !cleaned.SLACK_APP_TOKEN && !cleaned.SLACK_SIGNING_SECRET) {
    problems.push('SLACK_SIGNING_SECRET: required in HTTP mode (or set SLACK_APP_TOKEN for Socket Mode)');
  }
  return problems;
}

/** Workers and the CLI need a database to back up; a file target's `urlEnv` must name a set postgres URL. */
function targetProblems(cleaned: RawEnv, file: FileRead, mode: Mode): string[] {
  const problems: string[] = [];
  const fileTargets = file.config.targets;
  const needsTarget = mode !== 'bot' && mode !== 'offline';
  // A file with mistakes was not read (its targets unknown): asking for DATABASE_URL then would point the wrong way.
  if (needsTarget && !cleaned.DATABASE_URL && fileTargets.length === 0 && file.problems.length === 0) {
    problems.push('DATABASE_URL: required (postgres://user@host:port/dbname of the database to back up), unless the config file lists targets');
  }
  for (const t of fileTargets) {
    for (const [name, what] of [
      [t.urlEnv, 'urlEnv'],
      [t.pitr?.urlEnv, 'pitr.urlEnv'],
    ] as const) {
      if (name === undefined) continue;
      const value = cleaned[name];
      // Offline verbs (list, fetch, restore-pitr on a new host) never connect to the source: its URL may be gone.
      if (value === undefined) {
        if (mode !== 'offline') problems.push(`${name}: required by target ${t.name} in ${file.path} (${what})`);
      } else if (!PostgresUrl.safeParse(value).success)
        problems.push(`${name} (target ${t.name}): must be a postgres:// or postgresql:// URL (the value is not shown, it may hold a password)`);
    }
  }
  return problems;
}

function encryptionProblems(cleaned: RawEnv, file: FileRead): string[] {
  if (file.config.encryption === 'age' && !cleaned.BACKUP_ENCRYPTION_RECIPIENT) {
    return ['BACKUP_ENCRYPTION_RECIPIENT: required because the config file says `encryption: age` (age1… public keys)'];
  }
  return [];
}

/**
 * A DATABASE_URL set beside a config file that lists the targets, which no target reads: its database is never backed
 * up (the file's targets win), and nobody would be told (QA: the `init` file in the working directory). The sentence
 * to say at start, or null.
 */
export function ignoredDatabaseUrl(env: RawEnv, config: Pick<Config, 'targets' | 'configFile'>): string | null {
  const url = withoutEmpty(env).DATABASE_URL;
  if (!url || !config.configFile || config.targets.some((t) => t.url === url || t.pitr?.url === url)) return null;
  return `DATABASE_URL is set, but ${config.configFile} lists the targets (${config.targets.map((t) => t.name).join(', ')}) and none reads it: its database is not backed up. Add it there as a target (urlEnv: DATABASE_URL), or unset it.`;
}
