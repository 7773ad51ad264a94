import type { Queue } from 'bullmq';
import type { Config } from '../config.ts';
import { escapeMrkdwn, formatBytes, formatDuration } from '../format.ts';
import { reasonOf } from '../errors.ts';
import { type ConditionResult, checkTarget, healthSources, type RunLog } from '../health/index.ts';
import type { BackupJobData } from '../jobs/queues.ts';
import { conditionHeading, conditionLabel } from '../notifications/health-messages.ts';
import type { Block } from '../notifications/types.ts';
import { plannedSchedulers, scheduleStatus } from '../schedules/index.ts';
import { formatInZone } from '../schedules/time.ts';
import { type Manifest, totalBytes } from '../storage/index.ts';
import type { Storage } from '../storage/index.ts';
import { windowText } from './wal-status.ts';

/**
 * The bot's App Home: a live dashboard, one section per target — the newest backup and its age, the last restore
 * test and its RTO, every health condition, the next scheduled runs — with buttons that do what `/backup now` and
 * `/restore-test latest` do, checked by role as those are (home-surface.ts runs them through the same guard).
 */

export const HOME_BACKUP_ACTION = 'home_backup_now';
export const HOME_RESTORE_TEST_ACTION = 'home_restore_test';

export interface HomeDeps {
  config: Config;
  storage: Storage;
  queue: Queue<BackupJobData>;
  runs: RunLog | null;
}

export interface HomeView {
  type: 'home';
  blocks: Block[];
}

/** Slack's limit for a Home tab is 100 blocks: a header, a notice, then five per target; the rest are counted. */
const MAX_TARGETS = 18;

const ago = (at: Date, now: Date) => `${formatDuration(Math.max(0, now.getTime() - at.getTime()))} ago`;
const section = (text: string): Block => ({ type: 'section', text: { type: 'mrkdwn', text: text.slice(0, 3000) } });
const context = (text: string): Block => ({ type: 'context', elements: [{ type: 'mrkdwn', text: text.slice(0, 3000) }] });

function newestOf(backups: Manifest[]): Manifest | undefined {
  return backups.reduce<Manifest | undefined>((a, b) => (!a || Date.parse(b.startedAt) > Date.parse(a.startedAt) ? b : a), undefined);
}

/** The view, read now: `notice` goes on top (what a button click just did, or why it was refused). */
export async function buildHome(deps: HomeDeps, notice?: string, now = new Date()): Promise<HomeView> {
  const sources = healthSources(deps.config, { storage: deps.storage, runs: deps.runs, backupQueue: deps.queue });
  const rows = scheduleStatus(plannedSchedulers(deps.config), now);
  const targets = deps.config.targets.slice(0, MAX_TARGETS);
  // A target whose storage cannot be read is said so in its place; the others are shown (QA: nothing was published).
  const parts = await Promise.all(
    targets.map(async (t) => {
      try {
        return { target: t, ...(await checkTarget(sources, t.name, now)) };
      } catch (err) {
        return { target: t, unreadable: reasonOf(err) };
      }
    }),
  );
  const blocks: Block[] = [
    { type: 'header', text: { type: 'plain_text', text: 'PostgreSQL backups' } },
    context(`Updated ${formatInZone(now, deps.config.timezone)} · results go to ${escapeMrkdwn(deps.config.slack.channel)}`),
  ];
  if (notice) blocks.push(section(`:point_right: ${notice}`));
  for (const part of parts) {
    const { target } = part;
    // Soonest first (QA: 02:00 was listed before 00:00).
    const next = rows
      .filter((r) => r.target === target.name && r.next[0])
      .sort((a, b) => (a.next[0] as Date).getTime() - (b.next[0] as Date).getTime())
      .map((r) => `${escapeMrkdwn(r.label)} ${formatInZone(r.next[0] as Date, deps.config.timezone)}`);
    blocks.push({ type: 'divider' });
    if ('unreadable' in part) {
      blocks.push(
        section(`*${escapeMrkdwn(target.name)}* (${target.environment})\n:rotating_light: Its health cannot be checked now: ${escapeMrkdwn(part.unreadable)}`),
      );
    } else {
      const { input, results } = part;
      const newest = newestOf(input.backups);
      // The RPO as measured (the `rpo` condition), beside the window: what a loss of the server now would cost.
      const rpo = results.find((r) => r.condition === 'rpo');
      const test = input.lastRestoreTest;
      const failing = results.filter((r) => r.status === 'failing');
      blocks.push(
        section(
          [
            `*${escapeMrkdwn(target.name)}* (${target.environment})`,
            newest
              ? `Newest backup: \`${newest.backupId}\`, ${ago(new Date(newest.startedAt), now)} · ${formatBytes(totalBytes(newest))} in ${formatDuration(newest.durationMs)}`
              : 'Newest backup: none yet',
            ...(input.walHealth ? [`Point-in-time recovery: ${windowText(deps.config, target.name, input.walHealth.archive)}`] : []),
            ...(rpo ? [`${rpo.status === 'ok' ? '' : ':rotating_light: '}Measured RPO: ${escapeMrkdwn(rpo.summary)}`] : []),
            test
              ? `Last restore test: ${test.passed ? ':white_check_mark: passed' : ':x: FAILED'}, ${ago(test.at, now)}${test.durationMs !== undefined ? ` · restore time (RTO) ${formatDuration(test.durationMs)}` : ''}`
              : 'Last restore test: none yet',
          ].join('\n'),
        ),
      );
      blocks.push(
        section(
          failing.length === 0
            ? passingText(results)
            : failing
                .map(
                  (r) =>
                    `${r.severity === 'warning' || r.quiet ? ':warning:' : ':rotating_light:'} ${conditionLabel(r.condition, r.episode)}: ${escapeMrkdwn(r.evidence)}`,
                )
                .join('\n'),
        ),
      );
    }
    blocks.push(context(next.length ? `Next: ${next.join(' · ')}` : 'No scheduled runs'));
    blocks.push(actionsOf(target.name));
  }
  const more = deps.config.targets.length - targets.length;
  if (more > 0) blocks.push(context(`… and ${more} more targets: \`/backup health\` lists them all.`));
  if (deps.config.targets.length === 0) blocks.push(section('No targets are configured.'));
  return { type: 'home', blocks };
}

const actionsOf = (target: string): Block => ({
  type: 'actions',
  block_id: `home-${target}`,
  elements: [
    { type: 'button', action_id: HOME_BACKUP_ACTION, text: { type: 'plain_text', text: 'Back up now' }, value: target },
    { type: 'button', action_id: HOME_RESTORE_TEST_ACTION, text: { type: 'plain_text', text: 'Restore test' }, value: target },
  ],
});

/** "All 16 pass" only when each judged something: a check with nothing to judge yet (no restore test) is named. */
function passingText(results: ConditionResult[]): string {
  const unjudged = results.filter((r) => r.unjudged);
  if (unjudged.length === 0) return `:white_check_mark: All ${results.length} health checks pass`;
  const named = unjudged.map((r) => `${conditionHeading(r)} (${escapeMrkdwn(r.evidence)})`).join('; ');
  return `:white_check_mark: ${results.length - unjudged.length} of ${results.length} health checks pass; :white_circle: not judged yet: ${named}`;
}
