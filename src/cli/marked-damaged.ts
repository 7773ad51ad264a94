import type { Logger } from '../logger.ts';
import { onlyRolesFailed } from '../postgres/restore/index.ts';
import { type Manifest, newestGoodSentence, newestGoodWithin, type Storage } from '../storage/index.ts';
import { confirmDamage } from '../storage/scrub.ts';

/**
 * A sha256 the restore found wrong, read back twice more the same: marked damaged, as the bot's workers mark it, so
 * `list`, restores and restore tests stop offering it. Returns the line that says so, or '' (nothing confirmed).
 */
export async function markedDamaged(
  deps: { storage: Storage; log: Logger; signal?: AbortSignal | undefined },
  manifest: Manifest,
  checksums: ReadonlyArray<{ file: string; ok: boolean }>,
  by: string,
): Promise<string> {
  const why = await confirmDamage(deps.storage, manifest, { by, checksums }, { log: deps.log, signal: deps.signal });
  if (!why) return '';
  const good = newestGoodSentence(manifest.target, await newestGoodWithin(deps.storage, manifest), (id) => id);
  const instead = good ? ` ${good}.` : '';
  const refused = onlyRolesFailed(manifest, checksums)
    ? 'restore tests and restores --with-globals refuse it (only its roles file is damaged: other restores still take it)'
    : 'restores and restore tests refuse it';
  return `\nBackup ${manifest.backupId} is now marked damaged (${why}; read back twice more, the same): list leaves it out, ${refused}, and the bot's next health check pages it.${instead}`;
}
