import type { Config } from '../config-types.ts';
import { targetThresholds } from '../health/target-thresholds.ts';
import { DEFAULT_THRESHOLDS } from '../health/types.ts';

/**
 * A production target whose every backup schedule is disabled (`enabled: false` on each) and that has no scheduled
 * base backups either: nothing backs it up but `/backup now`, and until this the bot started without a word; `stale`
 * found it a day later (QA). Said by the worker at start (workers/startup-checks.ts) and at the top of `/backup
 * status`. Staging may be backed up by hand only; that is a choice, not a slip.
 */
export function unscheduledProduction(config: Pick<Config, 'targets' | 'timezone' | 'health'>): string[] {
  const thresholds = targetThresholds(config);
  return config.targets
    .filter((t) => t.environment === 'production' && t.policy.backups.length === 0 && !t.policy.baseBackup)
    .map((t) => {
      const stale = thresholds(t.name).staleHours ?? DEFAULT_THRESHOLDS.staleHours;
      return `*${t.name}* (production) has every backup schedule disabled in the config: nothing backs it up but \`/backup now\`, and \`stale\` pages ${stale} h after its last backup. Enable one under its \`schedules.backups\` in the config file.`;
    });
}

/** The same for `/backup status`, in at most `room` characters: named one by one, or summed up when many. */
export function unscheduledStatus(config: Pick<Config, 'targets' | 'timezone' | 'health'>, room = 1200): string {
  const lines = unscheduledProduction(config).map((l) => `:warning: ${l}`);
  const all = lines.join('\n');
  if (all.length <= room) return all;
  const names = config.targets.filter((t) => lines.some((l) => l.startsWith(`:warning: *${t.name}* `))).map((t) => t.name);
  return `:warning: ${names.length} production targets have every backup schedule disabled in the config (nothing backs them up but \`/backup now\`): ${names.join(', ')}`.slice(
    0,
    room,
  );
}
