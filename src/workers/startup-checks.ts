import { createHash } from 'node:crypto';
import type { Config } from '../config.ts';
import { loadIdentity } from '../crypto/age.ts';
import { toUserMessage } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { serverSilence } from '../postgres/connection.ts';
import type { Notifier } from '../notifications/types.ts';
import type { RedisConnection } from '../redis-client.ts';
import { unscheduledProduction } from '../schedules/unscheduled.ts';

/**
 * What a worker can tell at start that would otherwise wait for a scheduled job to fail (QA): a target's database it
 * cannot connect to (a wrong password: up to 6 h until the next backup pages), and an identity file that is missing
 * or holds none of the keys backups are encrypted for (found only by the monthly restore test). Said once in the
 * channel, as one message, if still so `recheckMs` later (a database still starting at boot is no problem: second
 * reader); the same message not again within a day (a fleet of workers, or a child restarted by its supervisor, say
 * it once). Never fails or delays the start. A production target with every backup schedule disabled is said the
 * same way (schedules/unscheduled.ts).
 */
export async function startupChecks(deps: {
  config: Config;
  notifier: Pick<Notifier, 'post'>;
  redis: RedisConnection;
  log: Logger;
  /** Found problems are asked again after this long before they are said: a database still starting at boot is none. */
  recheckMs?: number;
}): Promise<string[]> {
  await announce(deps);
  const first = await problems(deps.config);
  if (first.length === 0) return first;
  await new Promise((r) => setTimeout(r, deps.recheckMs ?? 30_000).unref?.());
  const found = await problems(deps.config);
  if (found.length === 0) return found;
  const text = `:warning: A worker found at start:\n${found.map((l) => `• ${l}`).join('\n')}`;
  deps.log.warn({ found }, 'start-up checks found problems');
  const key = `${deps.config.queuePrefix}:startup-said:${createHash('sha256').update(text).digest('hex').slice(0, 16)}`;
  const said = await deps.redis.set(key, '1', 'EX', 86_400, 'NX').catch(() => 'OK');
  if (said === 'OK') await deps.notifier.post({ text }).catch((err: unknown) => deps.log.warn({ err }, 'could not post the start-up checks'));
  return found;
}

/**
 * Said once in the channel for each set of targets the workers run (a first start, a target added or removed, the
 * channel changed), never on a plain restart: the bot otherwise posted nothing until its first job, so a channel it
 * may not post to (a mistyped SLACK_CHANNEL, a private channel it was not invited to) was found by the night's first
 * backup (an earlier note). A refused post pages at once (WatchedNotifier), at deploy time; one that worked shows the
 * deploy is live.
 */
async function announce(deps: { config: Config; notifier: Pick<Notifier, 'post'>; redis: RedisConnection; log: Logger }): Promise<void> {
  const names = deps.config.targets.map((t) => t.name);
  const shown = names.length <= 8 ? names.join(', ') : `${names.slice(0, 8).join(', ')} and ${names.length - 8} more`;
  const text =
    names.length === 0
      ? ':information_source: pg-backup-bot is running with no target configured: nothing is backed up until one is added to its config.'
      : `:information_source: pg-backup-bot is running with ${names.length} target${names.length === 1 ? '' : 's'} (${shown}). Backups, restore tests, restores and health pages are posted in this channel; \`/backup status\` shows the schedules.`;
  const id = createHash('sha256')
    .update(`${deps.config.slack.channel}\n${names.join('\n')}`)
    .digest('hex')
    .slice(0, 16);
  const key = `${deps.config.queuePrefix}:announced:${id}`;
  const first = await deps.redis.set(key, new Date().toISOString(), 'EX', 90 * 86_400, 'NX').catch(() => null);
  if (first !== 'OK') return;
  await deps.notifier.post({ text }).catch(async (err: unknown) => {
    deps.log.warn({ err }, 'could not post that the bot is running');
    // Said at the next start again (a private channel fixed by inviting the bot keeps its name: second reader).
    await deps.redis.del(key).catch(() => undefined);
  });
}

async function problems(config: Config): Promise<string[]> {
  const found: string[] = unscheduledProduction(config);
  const unreachable = await Promise.all(
    config.targets.map(async (t) => {
      const silent = await serverSilence(t.url).catch((err: unknown) => toUserMessage(err));
      return silent ? `*${t.name}*: its database does not answer the bot (${silent}); its next backup fails unless this is fixed` : null;
    }),
  );
  found.push(...unreachable.filter((l): l is string => l !== null));
  const file = config.encryption.identityFile;
  if (file) {
    const identity = await loadIdentity(file, 'Restore tests read the encrypted backups').catch((err: unknown) => err as Error);
    if (identity instanceof Error) found.push(`${toUserMessage(identity)} Restore tests and restores cannot decrypt a backup until it can.`);
    else if (config.encryption.recipients.length > 0) {
      const own = await identity.recipients();
      if (own.length > 0 && !own.some((r) => config.encryption.recipients.includes(r)))
        found.push(
          `BACKUP_ENCRYPTION_IDENTITY_FILE (${file}) holds none of the keys BACKUP_ENCRYPTION_RECIPIENT encrypts backups for: restore tests and restores cannot decrypt them with it.`,
        );
    }
  }
  return found;
}
