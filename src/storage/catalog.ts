import { withDeadline } from '../deadline.ts';
import { BotError, NoSuchBackupError } from '../errors.ts';
import { BackupIdSchema, type Manifest, UnreadableManifest } from './manifest.ts';
import { rolesFileOnly } from './damaged-backups.ts';
import { pastDeadline } from './manifest-cache.ts';
import { failedRestoreTestIds } from './retention-plan.ts';
import type { BackupOwner, Storage } from './types.ts';
import { mistypedTarget, nearestBackup, timeOfBackupId } from './backup-suggestions.ts';

export { timeOfBackupId };

/** Questions people ask about backups, answered from the manifests (the source of truth). */

/** `pagila_prod-20261124T232411Z` → `pagila_prod`; null when `backupId` is not a backup id. */
export function targetOfBackupId(backupId: string): string | null {
  if (!BackupIdSchema.safeParse(backupId).success) return null;
  return backupId.replace(/-\d{8}T\d{6}Z(-\d+)?$/, '');
}

/**
 * The finished backups (newest first), and which of them failed their latest restore test: listed, but not good.
 * What `/backup list` and `pg-backup-bot list` show.
 */
export async function listWithTestVerdicts(storage: Storage, target?: string): Promise<{ backups: Manifest[]; failedTests: ReadonlySet<string> }> {
  const [backups, tests] = await Promise.all([storage.list(target), storage.listRecords('restore-test', target)]);
  return { backups, failedTests: failedRestoreTestIds(tests) };
}

/** The newest finished backup of `target` by start time, or null when it has none. */
export async function latestBackup(storage: Storage, target: string): Promise<Manifest | null> {
  const [newest] = await storage.list(target);
  return newest ?? null;
}

/** A backup newer than the one `latest` chose, left out as damaged: what a test of "the latest" must say it passed over. */
export type PassedOver = { backupId: string; why: string };

/**
 * The newest good backup, and the damaged ones newer than it that the listing left out (QA: `/restore-test latest`
 * tested an older backup in silence, and its pass resolved the page the damaged newest one had raised).
 */
export async function latestGoodBackup(storage: Storage, target: string): Promise<{ latest: Manifest | null; passedOver: PassedOver[] }> {
  const latest = await latestBackup(storage, target);
  const after = latest ? (timeOfBackupId(latest.backupId) ?? 0) : Number.NEGATIVE_INFINITY;
  const passedOver = (storage.damaged?.(target) ?? [])
    // One past its deadline is retention's to delete, not a backup the test should have taken (second reader).
    .filter((d) => d.target === target && !d.expired && (timeOfBackupId(d.backupId) ?? 0) > after)
    .sort((a, b) => (timeOfBackupId(b.backupId) ?? 0) - (timeOfBackupId(a.backupId) ?? 0))
    .map(({ backupId, why }) => ({ backupId, why }));
  return { latest, passedOver };
}

/** Said with a test of the newest good backup when newer ones are damaged: which, why, and that this is not them. */
export function passedOverSentence(passedOver: readonly PassedOver[], healthCommand: string): string | null {
  if (passedOver.length === 0) return null;
  const named = passedOver.map((d) => `${d.backupId} (${d.why})`).join('; ');
  const newest = passedOver.length === 1 ? 'The newest backup is damaged' : `The ${passedOver.length} newest backups are damaged`;
  return `${newest}: ${named}. This test is of the newest good one, so it says nothing of ${passedOver.length === 1 ? 'it' : 'them'}; \`${healthCommand}\` shows the damage.`;
}

/**
 * The finished backup with this id; the target is part of the id. `seeList` names, for an id with no backup, the
 * command of the asker's surface that lists the target's backups (`/backup list shop`, `pg-backup-bot list shop`).
 */
export async function findBackup(storage: Storage, backupId: string, seeList?: (target: string) => string): Promise<Manifest> {
  const target = targetOfBackupId(backupId);
  if (target === null || timeOfBackupId(backupId) === null) {
    throw new BotError('bad_request', `"${backupId}" is not a backup id; they look like <target>-YYYYMMDDTHHMMSSZ (a date and a UTC time).`);
  }
  try {
    return await storage.readManifest(target, backupId);
  } catch (err) {
    if (!seeList || !(err instanceof NoSuchBackupError)) throw err;
    // A second mistyped or an id from another day: the one nearest in time is most likely the one meant.
    const near = await withDeadline(1000, nearestBackup(storage, err.target, backupId), 'naming the nearest backup', 'storage').catch(() => '');
    // No backup of that target at all: most likely its name is mistyped (`shopp-…`): the target it nearly names.
    // One listing of every target's backups serves the target it nearly names, its nearest backup, and the targets.
    const stored = near ? null : await withDeadline(1000, storage.list(), 'listing the targets', 'storage').catch(() => null);
    const typo = stored ? mistypedTarget(stored, err.target, backupId) : null;
    if (typo)
      throw new BotError(
        'backup_not_found',
        `${err.userMessage} No backup of ${err.target} is stored: ${typo.said} ${seeList(typo.target)} shows its backups.`,
        {
          cause: err,
        },
      );
    // No backup of that target at all, nor of one it nearly names: said, with the targets that have backups (QA: sent
    // to `/backup list shop`, which answered that shop is no target).
    const targets = stored ? [...new Set(stored.map((b) => b.target))].sort() : null;
    if (targets && !targets.includes(err.target))
      throw new BotError(
        'backup_not_found',
        `${err.userMessage} No backup of ${err.target} is stored at all${targets.length ? `: the targets with backups are ${targets.join(', ')}` : ', nor of any other target'}.`,
        { cause: err },
      );
    throw new BotError('backup_not_found', `${err.userMessage}${near} ${seeList(err.target)} shows its backups.`, { cause: err });
  }
}

/**
 * findBackup for a restore or a restore test: a backup that cannot be restored as stored (marked damaged by the
 * checksum scrub, an artifact missing, unreadable or cut short) is refused with why and the target's newest good
 * backup, before anything is queued: it cannot restore, and a test of it would page for what is already known. Only
 * that backup is checked (a listing of the target may be slow, or fail on another backup); the newest good one is
 * looked up for the refusal alone, and left out when the listing does not answer within a second.
 */
export async function findRestorable(
  storage: Storage,
  backupId: string,
  seeList: (target: string) => string,
  /** false: a restore that does not apply the backup's roles (all but `--with-globals`): damage to the roles file alone is no bar. */
  rolesNeeded = true,
): Promise<Manifest> {
  const m = await findBackup(storage, backupId, seeList).catch(async (err: unknown) => {
    if (!(err instanceof UnreadableManifest)) throw err;
    // Its manifest does not parse: refused as damaged, with what to use instead, as a backup the scrub marked.
    const target = targetOfBackupId(backupId) ?? '';
    const good = newestGoodSentence(target, await newestGoodWithin(storage, { target, backupId }), (id) => `\`${id}\``);
    const instead = good ? `${good}; ${seeList(target)} shows them all` : `${seeList(target)} shows the good ones`;
    throw new BotError('backup_damaged', `${err.userMessage} ${instead}. Nothing was started.`, { cause: err });
  });
  const why = await storage.whyUnrestorable?.(m);
  if (!why) return m;
  const expired = pastDeadline(m) ? ' (it is past its retention deadline: retention deletes it)' : '';
  const newest = await newestGoodWithin(storage, m);
  const good = newestGoodSentence(m.target, newest, (id) => `\`${id}\``);
  const instead = good ? `${good}; ${seeList(m.target)} shows them all` : `${seeList(m.target)} shows the good ones`;
  // The fault named is the roles file's (not the archive's, nor a marker that names no file): the archive can be had.
  const rolesOnly = rolesFileOnly(m, why);
  if (rolesOnly && !rolesNeeded) return m;
  const byHand = rolesOnly
    ? ` Its database archive is intact: a restore that does not apply the backup's roles (without --with-globals) goes on, or \`pg-backup-bot fetch ${m.backupId} -o FILE\` then pg_restore (README "Disaster recovery").`
    : '';
  throw new BotError('backup_damaged', `Backup ${m.backupId} cannot be restored: ${why}${expired}. ${instead}. Nothing was started.${byHand}`);
}

/**
 * What to use instead of a damaged backup, in one sentence without its full stop: "The newest good backup of T is X"
 * or "T has no good backup left"; null when the listing did not say (newestGoodWithin's undefined).
 */
export function newestGoodSentence(target: string, newest: string | null | undefined, quote: (id: string) => string): string | null {
  if (newest === undefined) return null;
  return newest === null ? `${target} has no good backup left` : `The newest good backup of ${target} is ${quote(newest)}`;
}

/**
 * The newest good backup of `m`'s target other than `m`, for a message that says what to use instead: null when
 * there is none, undefined when the listing did not answer within a second (the message must not wait on it).
 */
export const newestGoodWithin = (storage: Storage, m: Pick<Manifest, 'target' | 'backupId'>): Promise<string | null | undefined> =>
  withDeadline(1000, newestGood(storage, m), 'naming the newest good backup', 'storage').catch(() => undefined);

/** The newest listed backup of the target other than `m` whose latest restore test did not fail; null: none. */
async function newestGood(storage: Storage, m: Pick<Manifest, 'target' | 'backupId'>): Promise<string | null> {
  const { backups, failedTests } = await listWithTestVerdicts(storage, m.target);
  return backups.find((b) => b.backupId !== m.backupId && !failedTests.has(b.backupId))?.backupId ?? null;
}

/**
 * Reserves a backup directory named after `preferred` (`<target>-<YYYYMMDD>T<HHMMSS>Z`); when two backups of a
 * target start in the same second, the later one gets `-2`, `-3`, … instead of failing. `owner` is recorded in the
 * reservation (Storage.beginBackup).
 */
export async function reserveBackupId(storage: Storage, target: string, preferred: string, attempts = 50, owner?: BackupOwner): Promise<string> {
  const base = preferred.replace(/(T\d{6}Z)-\d+$/, '$1');
  for (let n = 1; n <= attempts; n++) {
    const id = n === 1 ? preferred : `${base}-${n}`;
    if (n > 1 && id === preferred) continue;
    try {
      await storage.beginBackup(target, id, owner);
      return id;
    } catch (err) {
      if (!(err instanceof BotError && err.code === 'backup_exists')) throw err;
    }
  }
  throw new BotError('backup_exists', `Could not find a free backup name after ${preferred}-${attempts}; nothing was started.`);
}

/** How long a backup directory without a manifest goes unwritten before listings name it (a backup reading its files back is still at work). */
export const STRAY_AFTER_MS = 3600_000;

/**
 * Backup directories (or S3 prefixes) without a manifest, unwritten for STRAY_AFTER_MS: a backup that was
 * interrupted, or a finished one whose manifest was lost. Never listed as backups; `list` and `/backup list` name
 * them, so files that look like a backup do not meet "No finished backups yet" (QA), and retention's clean-up of
 * them (UNFINISHED_MAX_AGE_MS after their last write) is said before it happens.
 */
export async function strayBackups(
  storage: Storage,
  target: string | undefined,
  now = new Date(),
): Promise<Array<{ backupId: string; modifiedAt: Date; path: string }>> {
  const reserved = (await storage.listReserved?.()) ?? [];
  return reserved
    .filter((r) => (target === undefined || r.target === target) && now.getTime() - r.modifiedAt.getTime() >= STRAY_AFTER_MS)
    .sort((a, b) => (a.backupId < b.backupId ? 1 : -1));
}
