import type { Env, RawEnv } from './config-env.ts';
import type { FileConfig } from './config-file.ts';
import type { Config, TargetConfig } from './config-types.ts';
import { BotError } from './errors.ts';
import { resolvePolicy } from './schedules/index.ts';

/** Derives a target name from the database name in a URL: `postgres://…/Pagila_Prod` → `pagila_prod`. */
export function targetNameFromUrl(url: string): string {
  const db = decodeURIComponent(new URL(url).pathname.replace(/^\//, '')) || 'postgres';
  const cleaned = db
    .toLowerCase()
    .replace(/[^a-z0-9_-]+/g, '-')
    .replace(/^[^a-z]+/, '');
  return (cleaned || 'db').slice(0, 48);
}

/** A production target on the default policy, as DATABASE_URL alone describes it. */
export function defaultTarget(name: string, url: string, environment: 'production' | 'staging' = 'production'): TargetConfig {
  return { name, url, environment, excludeTables: [], schemas: [], policy: resolvePolicy({ name, environment }), verify: 'content' };
}

/**
 * The file's targets win; without any, one production target from DATABASE_URL on the default policy. Called once
 * the config was found valid, so every `urlEnv` variable is set.
 */
export function resolveTargets(fileTargets: FileConfig['targets'], cleaned: RawEnv, env: Env, verify: TargetConfig['verify'] = 'content'): TargetConfig[] {
  if (fileTargets.length > 0) {
    return fileTargets.map((t) => ({
      name: t.name,
      url: t.url ?? cleaned[t.urlEnv ?? ''] ?? '',
      environment: t.environment,
      excludeTables: t.excludeTables,
      schemas: t.schemas,
      policy: resolvePolicy(t),
      verify: t.verify ?? verify,
      ...(t.pitr
        ? {
            pitr: {
              url: cleaned[t.pitr.urlEnv] ?? '',
              slot: t.pitr.slot ?? `pgbb_${t.name.replace(/-/g, '_')}`,
              walRetentionDays: t.pitr.walRetentionDays,
              rpoSeconds: t.pitr.rpoSeconds,
              markers: t.pitr.markers,
              ...(t.pitr.slotMaxBytes !== undefined ? { slotMaxBytes: t.pitr.slotMaxBytes } : {}),
              baseBackup: t.pitr.baseBackup,
            },
          }
        : {}),
    }));
  }
  return env.DATABASE_URL ? [{ ...defaultTarget(env.TARGET_NAME ?? targetNameFromUrl(env.DATABASE_URL), env.DATABASE_URL), verify }] : [];
}

export function findTarget(config: Config, name: string | undefined): TargetConfig {
  const names = config.targets.map((t) => t.name);
  if (name === undefined) {
    const first = config.targets[0];
    if (!first) throw new BotError('unknown_target', 'No backup target is configured: set DATABASE_URL.');
    return first;
  }
  const found = config.targets.find((t) => t.name === name);
  if (!found) {
    // No targets and no config file read: the file is what is missing, not a typo (QA: "Known targets: none." alone).
    const noFile =
      config.configFile === null && names.length === 0
        ? ` No config file was read (BOT_CONFIG is not set, and there is no ./pg-backup-bot.yml in ${process.cwd()}): set BOT_CONFIG to the file that lists the targets.`
        : '';
    throw new BotError('unknown_target', `There is no target named "${name}". Known targets: ${names.join(', ') || 'none'}.${noFile}`);
  }
  return found;
}
