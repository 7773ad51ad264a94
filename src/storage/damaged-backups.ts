import { isBotError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { dropUnseen, pastDeadline, wrongArtifact } from './manifest-cache.ts';
import type { Manifest } from './manifest.ts';
import { exists } from './fs-util.ts';
import type { UnfinishedBackup } from './types.ts';

export interface DamagedBackup {
  target: string;
  backupId: string;
  why: string;
  /** Marked so by the checksum scrub: retention deletes it at its deadline (not left for a person to delete). */
  marked?: true;
  /** The fault named is its roles file's alone: the database archive restores (all but `--with-globals`). */
  archiveIntact?: true;
  /**
   * Its retention deadline (ISO), when that has passed: retention's to delete at its next run, so not paged for, but
   * still named by every listing until then (QA: it vanished from `list`, the dry run and the scrub for up to a day).
   */
  expired?: string;
}

/**
 * Whether `why` (a backup's damage, as its listing or the scrub's marker says it) names files of `m` and only its
 * roles file: its database archive is intact, so every restore that does not apply the roles can take it.
 */
export function rolesFileOnly(m: Manifest, why: string): boolean {
  const faulty = m.artifacts.filter((a) => why.includes(a.file));
  return faulty.length > 0 && faulty.every((a) => a.role !== 'database');
}

/** The listing's reason to leave out a backup the checksum scrub marked damaged. */
class MarkedDamaged extends Error {}

/**
 * The finished backups a storage's listing left out as damaged (a manifest that does not parse, an artifact missing
 * or of the wrong size), keyed by where they are: `/backup list`, `list`, retention and the `damaged` health
 * condition read them. Each is logged once when first found, not on every listing (a burst of `/backup list` would
 * repeat it by the dozen), as a reason rather than a stack.
 */
export class DamagedBackups {
  readonly #found = new Map<string, DamagedBackup>();

  constructor(private readonly log: Logger | undefined) {}

  /** `m`: its manifest, when that parsed (the damage is then its files'). */
  note(where: string, target: string, backupId: string, err: unknown, m?: Manifest): void {
    const why = isBotError(err) ? err.userMessage : (err as Error).message;
    if (!this.#found.has(where)) this.log?.warn({ target, backupId, reason: why }, 'skipping a backup whose manifest or artifacts are broken');
    const intact = m !== undefined && rolesFileOnly(m, why);
    this.#found.set(where, {
      target,
      backupId,
      why,
      ...(err instanceof MarkedDamaged ? { marked: true as const } : {}),
      ...(intact ? { archiveIntact: true as const } : {}),
      ...(m?.retainUntil && pastDeadline(m) ? { expired: m.retainUntil } : {}),
    });
  }

  /** Whole again, or gone. */
  forget(where: string): void {
    this.#found.delete(where);
  }

  /** After a listing of everything under `prefix`: forgets what it did not see. */
  keepOnly(prefix: string, seen: ReadonlySet<string>): void {
    dropUnseen(this.#found, prefix, seen);
  }

  /** Newest id first. */
  list(target?: string): DamagedBackup[] {
    const found = [...this.#found.values()].filter((d) => target === undefined || d.target === target);
    return found.sort((a, b) => (a.backupId < b.backupId ? 1 : -1)).map((d) => ({ ...d }));
  }
}

/**
 * A finished backup found damaged after it was listed good (the checksum scrub, storage/scrub.ts): a marker beside
 * its manifest, so every listing (`/backup list`, `list`, health's `damaged`, retention) leaves it out and says why,
 * in every process, until retention deletes it with the rest of the backup.
 */
export const DAMAGED_MARKER = 'damaged.json';

export const damagedMarkerText = (why: string, at: Date) => `${JSON.stringify({ why, at: at.toISOString() }, null, 2)}\n`;

/** The marker's text (null: none) as the listing's reason to leave the backup out, or null. */
export function markedDamaged(text: string | null): Error | null {
  if (text === null) return null;
  try {
    const m = JSON.parse(text) as { why?: unknown; at?: unknown };
    const at = typeof m.at === 'string' && !Number.isNaN(Date.parse(m.at)) ? `${m.at.slice(0, 16).replace('T', ' ')} UTC` : 'at an unknown time';
    return new MarkedDamaged(`${String(m.why ?? 'marked damaged')}; marked ${at}`);
  } catch {
    return new MarkedDamaged(`marked damaged (its ${DAMAGED_MARKER} does not parse)`);
  }
}

/**
 * A finished backup's damage as stored in `dir`, asked of it alone (not a listing of its target): its marker (as the
 * listing's reason), or its first artifact missing, unreadable or of another size; null when neither.
 */
export async function damageIn(dir: string, m: Manifest): Promise<Error | null> {
  const marked = markedDamaged(await readFile(join(dir, DAMAGED_MARKER), 'utf8').catch(() => null));
  if (marked) return marked;
  const bad = await wrongArtifact(dir, m);
  return bad ? new Error(bad) : null;
}

/** Retention's clean-up state of a finished backup (its manifest `m`): marked damaged, or an artifact gone or cut short. */
export async function brokenStateIn(dir: string, m: Manifest | null): Promise<Pick<UnfinishedBackup, 'state' | 'retainUntil'> | null> {
  if (!m) return null;
  if (await exists(join(dir, DAMAGED_MARKER))) return { state: 'marked-damaged', retainUntil: m.retainUntil };
  return (await wrongArtifact(dir, m, { strict: true })) ? { state: 'artifacts-missing', retainUntil: m.retainUntil } : null;
}
