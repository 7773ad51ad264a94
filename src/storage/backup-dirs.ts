import { mkdir, rm, rmdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { TargetName } from '../target-name.ts';
import { errnoCode, readdirIfExists } from './fs-util.ts';
import { BackupIdSchema } from './manifest.ts';

/** The backup directories under `root` (`<target>/<backupId>`), of one target or all, finished or not. */
export async function backupIdsUnder(root: string, target?: string): Promise<Array<{ target: string; backupId: string }>> {
  const targets = target !== undefined ? [target] : (await readdirIfExists(root)).filter((t) => TargetName.safeParse(t).success);
  const out: Array<{ target: string; backupId: string }> = [];
  for (const t of targets) {
    for (const id of await readdirIfExists(join(root, t))) {
      if (id.startsWith(`${t}-`) && BackupIdSchema.safeParse(id).success) out.push({ target: t, backupId: id });
    }
  }
  return out;
}

/**
 * Backup directories on a local disk, and the parents made for them: a failed first backup of a target leaves
 * nothing behind, not even the (empty) target directory, or the backup root, that its reservation created. Only
 * directories this process created are removed, and only while they are empty.
 */
export class BackupDirs {
  readonly #made = new Map<string, string[]>();

  /** Creates `dir` exclusively: EEXIST when it exists, which is what makes a reservation exclusive. */
  async create(dir: string): Promise<void> {
    const made = await mkdirExclusive(dir);
    if (made.length > 0) this.#made.set(dir, made);
  }

  /** The backup is finished: its parents are its own for good. */
  keep(dir: string): void {
    this.#made.delete(dir);
  }

  /** Removes `dir` with everything in it, then the parents made for it that are empty now. */
  async remove(dir: string): Promise<void> {
    await rm(dir, { recursive: true, force: true });
    const made = this.#made.get(dir);
    this.#made.delete(dir);
    if (made) await removeEmptyDirs(made);
  }
}

/** `mkdir -p` that says what it made: the directories it created, outermost first (none when `dir` existed). */
export async function mkdirNoting(dir: string): Promise<string[]> {
  const first = await mkdir(dir, { recursive: true });
  if (first === undefined) return [];
  const made: string[] = [];
  for (let d = dir; ; d = dirname(d)) {
    made.unshift(d);
    if (d === first || dirname(d) === d) return made;
  }
}

/**
 * Creates `dir` (not recursively: it fails with EEXIST when `dir` exists) and its parents as needed; returns the
 * parents it created. Tried twice: another backup's cleanup may remove an empty parent between the two mkdirs.
 */
async function mkdirExclusive(dir: string): Promise<string[]> {
  const made: string[] = [];
  for (let attempt = 1; ; attempt++) {
    made.push(...(await mkdirNoting(dirname(dir))));
    try {
      await mkdir(dir);
      return made;
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT' || attempt > 1) {
        await removeEmptyDirs(made);
        throw err;
      }
    }
  }
}

/** Removes directories (listed outermost first) innermost first while each is empty; one that is not stops it. */
export async function removeEmptyDirs(dirs: readonly string[]): Promise<void> {
  for (const d of [...dirs].reverse()) {
    const err = await rmdir(d).then(
      () => null,
      (e: unknown) => e,
    );
    if (err !== null && errnoCode(err) !== 'ENOENT') return;
  }
}
