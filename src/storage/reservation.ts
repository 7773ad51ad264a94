import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { backupIdsUnder } from './backup-dirs.ts';
import { exists, newestMtime } from './fs-util.ts';
import type { BackupOwner, ReservedBackup } from './types.ts';

/**
 * The reservation marker, `<target>/<backupId>/.reserved`: written by beginBackup before any artifact, it names the
 * job that reserved the backup. S3 always writes it (it is what makes an empty reservation visible); a local disk
 * writes it when there is an owner to name (the directory itself is the reservation). Artifact names start with a
 * letter or digit, so the marker can never collide with one.
 */
export const RESERVATION = '.reserved';

/** Job ids as BullMQ makes them (`backup-shop-<uuid>`, `repeat:<scheduler>:<millis>`, plain numbers). */
const BackupOwnerSchema = z.object({ queue: z.string().min(1).max(200), jobId: z.string().min(1).max(200) });

export function reservationBody(backupId: string, owner: BackupOwner | undefined, now = new Date()): string {
  return JSON.stringify({ backupId, reservedAt: now.toISOString(), ...(owner ? { owner: { queue: owner.queue, jobId: owner.jobId } } : {}) });
}

/**
 * The owner a marker names; null when it names none, or does not parse (a crash while it was written): nobody's
 * leftover is then judged by its job, and retention's age rule cleans it instead.
 */
export function reservationOwner(text: string | null): BackupOwner | null {
  if (text === null) return null;
  try {
    const parsed = z.object({ owner: BackupOwnerSchema }).safeParse(JSON.parse(text));
    return parsed.success ? parsed.data.owner : null;
  } catch {
    return null;
  }
}

/** Local backup directories without a manifest (`manifestName`) under `root`, with who reserved each (storage listReserved). */
export async function reservedUnder(root: string, dirOf: (target: string, backupId: string) => string, manifestName: string): Promise<ReservedBackup[]> {
  const out: ReservedBackup[] = [];
  for (const { target, backupId } of await backupIdsUnder(root)) {
    const path = dirOf(target, backupId);
    if (await exists(join(path, manifestName))) continue;
    const owner = reservationOwner(await readFile(join(path, RESERVATION), 'utf8').catch(() => null));
    const modifiedAt = await newestMtime(path);
    if (modifiedAt) out.push({ target, backupId, path, owner, modifiedAt }); // else gone since the listing
  }
  return out;
}
