/**
 * A production target whose every backup schedule is disabled (`enabled: false` on each): nothing backs it up but
 * `/backup now`, and until this the bot started without a word; `stale` found it 25 h after its last backup (QA).
 * Said by the worker at start (workers/startup-checks.ts) and at the top of `/backup status`. Staging may be backed
 * up by hand only; that is a choice, not a slip.
 */
export function unscheduledProduction(config: {
  targets: ReadonlyArray<{ name: string; environment: string; policy: { backups: readonly unknown[] } }>;
}): string[] {
  return config.targets
    .filter((t) => t.environment === 'production' && t.policy.backups.length === 0)
    .map(
      (t) =>
        `*${t.name}* (production) has every backup schedule disabled in the config: nothing backs it up but \`/backup now\`, and \`stale\` pages 25 h after its last backup. Enable one under \`schedules.backups\`, or mark the target staging.`,
    );
}
