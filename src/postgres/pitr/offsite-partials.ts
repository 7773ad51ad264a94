import { join } from 'node:path';
import { BotError } from '../../errors.ts';
import { errnoCode } from '../../storage/fs-util.ts';
import type { ArtifactWriter } from '../../storage/types.ts';
import { commitFileVerified } from '../../storage/verified-stream.ts';
import { parseLsn } from './lsn.ts';
import type { PartialEntry, PartialWalStore } from './partial-store.ts';
import type { S3PitrStore } from './s3-pitr-store.ts';

/**
 * S3_MODE=primary: the partial segment's snapshots (rpo-monitor.ts, partial-store.ts) go to the bucket too, so that
 * the RPO of a quiet server does not wait for a segment to fill: the newest snapshot of each segment not in the bucket
 * whole is uploaded (hashed on the way against its entry), its entry replacing the older one there, whose file is
 * then removed; a snapshot whose whole segment is in the bucket is removed from it (entry first). Only what the
 * bucket holds counts: `walEnd` is the position the newest snapshot there reaches.
 */
export async function mirrorPartials(o: {
  local: PartialWalStore;
  remote: S3PitrStore;
  /** What the bucket holds: whole segments (by name), and snapshots (by segment), kept between passes. */
  wholeInBucket: ReadonlySet<string>;
  memory: { partials: Map<string, PartialEntry> | null };
  signal?: AbortSignal | undefined;
}): Promise<{ copied: number; walEnd: string | null }> {
  o.memory.partials ??= new Map((await o.remote.listPartials()).map((p) => [p.name, p]));
  const there = o.memory.partials;
  for (const [name, p] of [...there]) {
    if (!o.wholeInBucket.has(name)) continue;
    await o.remote.removePartial(p, true);
    there.delete(name);
  }
  let copied = 0;
  for (const p of await o.local.list()) {
    if (o.signal?.aborted) break;
    const old = there.get(p.name);
    if (o.wholeInBucket.has(p.name) || old?.file === p.file || (old && parseLsn(old.walEnd) >= parseLsn(p.walEnd))) continue;
    const uploaded = await o.remote
      .putPartial(p, (w) => copyChecked(join(o.local.dir, p.file), p, w))
      .then(() => true)
      .catch((err: unknown) => {
        // A newer snapshot replaced this one on disk as it was read: the next pass uploads that one.
        if (errnoCode(err) === 'ENOENT') return false;
        throw err;
      });
    if (!uploaded) continue;
    there.set(p.name, p);
    copied++;
    if (old) await o.remote.removePartial(old, false);
  }
  const newest = [...there.values()].sort((a, b) => (parseLsn(a.walEnd) < parseLsn(b.walEnd) ? -1 : 1)).at(-1);
  return { copied, walEnd: newest?.walEnd ?? null };
}

const copyChecked = (path: string, p: PartialEntry, writer: ArtifactWriter) =>
  commitFileVerified(path, p, writer, (how) => new BotError('storage_failed', `Partial WAL ${p.name} on the worker's disk ${how}: it was not uploaded.`));
