import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { readdirIfExists, writeFileAtomically } from '../../storage/fs-util.ts';

/**
 * How long restore-pitr's hold on its base backup lasts without a wal-fetch (the server not started yet), and how far
 * each wal-fetch pushes it: retention keeps the base backup and the WAL after it for as long as it lasts.
 */
export const READER_TTL_MS = 24 * 3_600_000;

/**
 * Who is reading a base backup (and so the WAL after it): restore-pitr and the server's wal-fetch calls, a PITR
 * restore test. Logical backups are protected by their jobs in the queues (jobs/backups-in-use.ts); a point-in-time
 * restore runs on a new host, often long after restore-pitr exited, with nothing in any queue. So the reader says so
 * in the storage it reads, where retention looks: `<BACKUP_DIR>/<target>/_pitr-readers/<token>.json` names the base
 * backup and holds an expiry. Retention keeps a base backup with an unexpired reader, and every WAL file after its
 * start. A reader that dies leaves a file that expires; retention removes expired ones.
 */
const ReaderSchema = z.object({
  baseId: z.string().min(1),
  /** What reads it: "restore-pitr to 2026-12-03T13:30:00Z by alice", "PITR restore test <job>". */
  reader: z.string(),
  host: z.string(),
  pid: z.number().int(),
  since: z.string().datetime(),
  until: z.string().datetime(),
});
export type PitrReader = z.infer<typeof ReaderSchema> & { token: string };

const TOKEN = /^[0-9a-f]{24}$/;
const readersDir = (root: string, target: string) => join(root, target, '_pitr-readers');

export interface PitrReservation {
  token: string;
  /** Pushes the expiry to now + ttl (wal-fetch does it at every call). */
  renew(): Promise<void>;
  /** Done reading: retention may delete it again. */
  release(): Promise<void>;
}

/**
 * Reserves base backup `baseId` of `target` (and the WAL after it) against retention until released, or until `ttlMs`
 * without a renewal. `renewEveryMs` renews it from this process while it lives (a restore test that runs for hours);
 * 0 leaves it to the caller (restore-pitr, whose process ends before the recovery does). Take it before reading,
 * then check the base backup is still there: a retention run that decided before the reservation existed may have
 * deleted it.
 */
export async function reservePitrBase(
  root: string,
  target: string,
  baseId: string,
  o: { reader: string; ttlMs?: number; renewEveryMs?: number; token?: string; now?: () => Date },
): Promise<PitrReservation> {
  const token = o.token ?? randomBytes(12).toString('hex');
  if (!TOKEN.test(token)) throw new Error('a PITR reservation token is 24 hex digits');
  const ttlMs = o.ttlMs ?? 10 * 60_000;
  const now = o.now ?? (() => new Date());
  const since = now().toISOString();
  const file = join(readersDir(root, target), `${token}.json`);
  const write = async () => {
    const body: z.infer<typeof ReaderSchema> = {
      baseId,
      reader: o.reader,
      host: hostname(),
      pid: process.pid,
      since,
      until: new Date(now().getTime() + ttlMs).toISOString(),
    };
    await mkdir(readersDir(root, target), { recursive: true, mode: 0o750 });
    await writeFileAtomically(file, `${JSON.stringify(body)}\n`);
  };
  // One write at a time, and none after the release: a renewal landing after the rm would bring the file back.
  let released = false;
  let writing: Promise<void> = Promise.resolve();
  const renew = () => {
    writing = writing.catch(() => undefined).then(() => (released ? undefined : write()));
    return writing;
  };
  await renew();
  const every = o.renewEveryMs ?? Math.floor(ttlMs / 3);
  const timer = every > 0 ? setInterval(() => void renew().catch(() => undefined), every) : null;
  timer?.unref();
  return {
    token,
    renew,
    async release() {
      released = true;
      if (timer) clearInterval(timer);
      await writing.catch(() => undefined);
      await rm(file, { force: true });
    },
  };
}

/** wal-fetch's renewal of restore-pitr's reservation: its expiry pushed on, when it still exists. */
export async function renewPitrReservation(root: string, target: string, token: string, ttlMs: number, now = new Date()): Promise<boolean> {
  if (!TOKEN.test(token)) return false;
  const file = join(readersDir(root, target), `${token}.json`);
  const text = await readFile(file, 'utf8').catch(() => null);
  if (text === null) return false;
  const r = ReaderSchema.parse(JSON.parse(text));
  await writeFileAtomically(file, `${JSON.stringify({ ...r, until: new Date(now.getTime() + ttlMs).toISOString() })}\n`);
  return true;
}

/** Every reader of a target's base backups: `active` (unexpired) and `expired`. Files are written whole (tmp + rename). */
export async function pitrReaders(root: string, target: string, now = new Date()): Promise<{ active: PitrReader[]; expired: PitrReader[] }> {
  const active: PitrReader[] = [];
  const expired: PitrReader[] = [];
  for (const name of await readdirIfExists(readersDir(root, target))) {
    const token = name.replace(/\.json$/, '');
    if (!name.endsWith('.json') || !TOKEN.test(token)) continue;
    const text = await readFile(join(readersDir(root, target), name), 'utf8').catch(() => null);
    if (text === null) continue;
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      continue;
    }
    const parsed = ReaderSchema.safeParse(json);
    if (!parsed.success) continue;
    (Date.parse(parsed.data.until) > now.getTime() ? active : expired).push({ ...parsed.data, token });
  }
  return { active, expired };
}

/** An expired reader's file, removed by retention (a restore that died long ago). */
export async function forgetPitrReader(root: string, target: string, token: string): Promise<void> {
  if (TOKEN.test(token)) await rm(join(readersDir(root, target), `${token}.json`), { force: true });
}
