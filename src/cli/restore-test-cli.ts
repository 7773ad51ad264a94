import { randomUUID } from 'node:crypto';
import { checkedSummary, rtoText } from '../notifications/restore-messages.ts';
import { findTarget } from '../config.ts';
import { BotError, toUserMessage } from '../errors.ts';
import { formatBytes, formatDuration } from '../format.ts';
import { runRestoreTest, scratchName } from '../postgres/restore/index.ts';
import { BackupIdSchema, findRestorable, latestGoodBackup, newRecordId, passedOverSentence, type RestoreRecord } from '../storage/index.ts';
import { SEE_LIST } from '../commands/restore-text.ts';
import { restoreTestSettings, scratchServerUrl } from '../workers/restore-test-settings.ts';
import { rolesForRestoreTest } from '../workers/restore-test-roles.ts';
import { markedDamaged } from './marked-damaged.ts';
import { type CliDeps, requestedBy } from './restore-cli.ts';
import { missingBackupDir } from './backup-dir.ts';
import { holdForReading } from './cli-hold.ts';
import { didYouMean, unwrapWord } from '../commands/typed-ids.ts';

/** `pg-backup-bot restore-test [target|backup-id]`: exit 0 pass, 1 fail (or could not run), 2 usage. */
export async function cliRestoreTest(args: string[], deps: CliDeps): Promise<number> {
  const { io } = deps;
  let hold: Awaited<ReturnType<typeof holdForReading>> = null;
  // An id copied from the bot's own messages keeps its backticks (QA: `restore` took it, this refused it).
  const [raw, ...extra] = args;
  const arg = raw === undefined ? undefined : unwrapWord(raw);
  if (extra.length > 0) {
    io.err('usage: pg-backup-bot restore-test [target|backup-id]');
    return 2;
  }
  try {
    const isId = arg !== undefined && BackupIdSchema.safeParse(arg).success;
    // Neither a backup id nor a target is refused: a mistyped id must not test (and pass) the latest backup instead.
    if (arg !== undefined && !isId && !deps.config.targets.some((t) => t.name === arg))
      throw new BotError(
        'bad_request',
        `"${arg}" is neither a backup id nor a target (${deps.config.targets.map((t) => t.name).join(', ')}); \`pg-backup-bot list\` shows the ids.${didYouMean(arg)} Nothing was tested.`,
      );
    const { latest: manifest, passedOver } =
      isId && arg !== undefined
        ? { latest: await findRestorable(deps.storage, arg, SEE_LIST.cli), passedOver: [] }
        : await latestGoodBackup(deps.storage, findTarget(deps.config, arg).name);
    if (!manifest) throw new BotError('backup_not_found', (await missingBackupDir(deps.config)) ?? noBackupToTest(deps.storage.damaged?.() ?? []));
    const target = findTarget(deps.config, manifest.target);
    const notNewest = passedOverSentence(passedOver, `pg-backup-bot check ${target.name}`);
    io.err(`Restore test of ${manifest.backupId} …${notNewest ? `\nwarning: ${notNewest.replace(/`/g, '')}` : ''}`);
    // Held against retention while it reads (jobs/cli-readers.ts), when there is the bot's Redis to hold it in.
    const scratchKey = `cli:${randomUUID()}`;
    const settings = restoreTestSettings(deps.config);
    hold = await holdForReading(deps, manifest.backupId, manifest.retainUntil, 'test', scratchName(scratchKey, settings.scratchScope));
    const startedAt = new Date();
    const serverUrl = scratchServerUrl(deps.config, target.url);
    // On another server than the target's, the backup's roles first: those its policies name must exist there.
    const roles = await rolesForRestoreTest({ ...deps, manifest, serverUrl, targetUrl: target.url });
    for (const n of roles.notes) io.err(n);
    const outcome = await runRestoreTest({
      manifest,
      storage: deps.storage,
      serverUrl,
      scratchKey,
      ...settings,
      verify: target.verify,
      missingRole: roles.missingRole,
      ...(deps.signal ? { signal: deps.signal } : {}),
      log: deps.log,
      onProgress: (p: { phase: string }) => io.err(`  ${p.phase} · ${formatDuration(Date.now() - startedAt.getTime())}`),
    });
    const record: RestoreRecord = {
      ...outcome,
      formatVersion: 1,
      kind: 'restore-test',
      id: newRecordId(startedAt),
      requestedBy: requestedBy(),
      jobId: null,
      selection: null,
      correctiveActions: null,
      ...(roles.notes.length || notNewest ? { notes: [...(notNewest ? [notNewest] : []), ...roles.notes] } : {}),
    };
    await deps.storage.writeRecord(record);
    io.out(
      [
        `Restore test of ${manifest.backupId} ${record.passed ? 'PASSED' : 'FAILED'}`,
        // As the channel's verdict says it (restore-messages.ts): a test that failed before restoring has no RTO.
        `  restore (RTO)  ${rtoText(record)}`,
        `  whole test     ${formatDuration(record.durationMs)}`,
        `  restored size  ${record.restoredBytes === null ? 'n/a' : formatBytes(record.restoredBytes)}`,
        `  checked        ${checkedSummary(record)}`,
        ...record.problems.map((p) => `  problem        ${p}`),
        ...(notNewest ? [`  not newest     ${notNewest.replace(/`/g, '')}`] : []),
      ].join('\n'),
    );
    const marked = await markedDamaged(deps, manifest, record.checked.checksums, 'pg-backup-bot restore-test');
    if (marked) io.err(marked.trim());
    return record.passed ? 0 : 1;
  } catch (err) {
    io.err(`Restore test could not run: ${toUserMessage(err)}`);
    return 1;
  } finally {
    await hold?.release();
  }
}

/** Why there is nothing to test: none taken yet, or every one stored is damaged (`list` names them and why). */
function noBackupToTest(damaged: ReadonlyArray<{ why: string }>): string {
  if (damaged.length === 0) return 'There is no finished backup to test yet; take one with `pg-backup-bot backup`.';
  // Readable by the bot's user only (files 0640): not damage, and a new backup would not help (QA: run as another user).
  if (damaged.every((d) => /EACCES|permission denied/i.test(d.why)))
    return `There is no backup this user may read: the ${damaged.length} stored ${damaged.length === 1 ? 'is' : 'are'} not readable by it (permission denied; the bot writes its files 0640, for its own user and group). Run this as the bot's user, or a member of its group.`;
  return `There is no good backup to test: the ${damaged.length} stored ${damaged.length === 1 ? 'is' : 'are'} damaged (\`pg-backup-bot list\` says why); take a new one with \`pg-backup-bot backup\`.`;
}
