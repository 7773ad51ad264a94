import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { z } from 'zod';
import type { AgeEngine } from '../../crypto/age-cli.ts';
import { createEncryptStream } from '../../crypto/age.ts';
import { BotError, type ErrorCode } from '../../errors.ts';
import { openFileWriter } from '../../storage/file-writer.ts';
import { errnoCode, storageError, writeFileAtomically } from '../../storage/fs-util.ts';
import { ToolPipeError, type ToolPipeResult } from '../backup/tool-chain.ts';
import { findPerl } from '../backup/perl-stages.ts';
import { runToolIntoZstd } from '../backup/tool-pipe.ts';
import { withPgEnv } from '../connection.ts';
import { firstErrorLine } from '../failures.ts';
import type { ArtifactWriter } from '../../storage/types.ts';

/**
 * A base backup for point-in-time recovery: `pg_basebackup -D - -Ft -X none` over a replication connection,
 * streamed (no temporary copy of the cluster) through zstd and age into `<BACKUP_DIR>/<target>/_base/<id>/`, or
 * with S3 as the primary store into the bucket's `_base/<id>/` (multipart), hashed on the way. The tar holds
 * PostgreSQL's own `backup_label` and `backup_manifest`; the WAL it needs comes from the WAL archive (-X none), from
 * its start point to its end point, both recorded here.
 */
export const BaseBackupSchema = z.object({
  id: z.string(),
  target: z.string(),
  file: z.string(),
  bytes: z.number().int().nonnegative(),
  rawBytes: z.number().int().nonnegative(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  encryption: z.enum(['age', 'none']),
  startedAt: z.string().datetime(),
  finishedAt: z.string().datetime(),
  /** pg_basebackup's own words: `0/2000028` on timeline 1, and where it ended. */
  startLsn: z.string(),
  endLsn: z.string(),
  timeline: z.number().int().positive(),
  pgBasebackupVersion: z.string(),
});
export type BaseBackup = z.infer<typeof BaseBackupSchema>;

export interface BaseBackupOptions {
  target: string;
  root: string;
  replicationUrl: string;
  pgBasebackup: string;
  zstd: string;
  level: number;
  recipients: string[];
  ageEngine: AgeEngine | undefined;
  signal?: AbortSignal | undefined;
  now?: () => Date;
  /**
   * The server's clock (take-base-backup.ts: read over the target's ordinary connection), for `startedAt` and
   * `finishedAt`: the window of recovery opens at the finish, and recovery targets are the server's commit times. A
   * worker clock behind the server's stamped a backup finished before it was, and the window claimed moments no
   * recovery from it reaches. Without it, `now`.
   */
  clock?: () => Promise<Date>;
  /** perl for the tap and the file writer (perl-stages.ts); null: coreutils' (the bench compares them). Default: findPerl(). */
  perl?: string | null;
  /** Bytes of the cluster read from pg_basebackup so far, on every chunk (the caller throttles). */
  onProgress?: (rawBytes: number) => void;
  /**
   * S3 as the primary store (S3_MODE=primary): the file is streamed into the bucket (multipart, hashed on the way)
   * and its base.json written there once S3 reports the recorded size. The local directory only reserves the id and
   * holds the tap's named pipe; it is removed after.
   */
  remote?: BaseBackupBucket | undefined;
}

/** What a base backup needs of the bucket (s3-pitr-store.ts S3PitrStore). */
export interface BaseBackupBucket {
  baseWriter(id: string, file: string): ArtifactWriter;
  recordBase(b: BaseBackup): Promise<void>;
  removeBase(b: Pick<BaseBackup, 'id' | 'file'>): Promise<void>;
}

/** How much of the tar's end is kept to find the manifest's WAL-Ranges (they follow every file's line). */
const MANIFEST_TAIL = 64 * 1024;
const WAL_RANGE = /"WAL-Ranges":\s*\[\s*\{\s*"Timeline":\s*(\d+),\s*"Start-LSN":\s*"([0-9A-F]+\/[0-9A-F]+)",\s*"End-LSN":\s*"([0-9A-F]+\/[0-9A-F]+)"/;

const stamp = (d: Date) =>
  d
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');

/**
 * The base backup's own directory, made exclusively: two base backups started in the same second (one waited for the
 * other's lock) get `…Z` and `…Z-2`, never one directory between them.
 */
async function reserve(root: string, target: string, at: string): Promise<{ id: string; dir: string }> {
  await mkdir(join(root, target, '_base'), { recursive: true, mode: 0o750 });
  for (let n = 1; ; n++) {
    const id = `${target}-base-${at}${n > 1 ? `-${n}` : ''}`;
    const dir = join(root, target, '_base', id);
    try {
      await mkdir(dir, { mode: 0o750 });
      return { id, dir };
    } catch (err) {
      if (errnoCode(err) !== 'EEXIST' || n >= 100) throw storageError(err, dir, 'create the base backup directory');
    }
  }
}

/** What pg_basebackup said, without the server's NOTICE ("WAL archiving is not enabled …"), which is never the error. */
const whyFailed = (stderr: string) => firstErrorLine(stderr.replace(/^NOTICE: .*$/gm, ''));

/**
 * The chain's failure as one sentence naming its cause: pg_basebackup's own words only when pg_basebackup is the
 * stage that failed (QA: a full disk, a dead zstd or a bad key were all said as pg_basebackup's "could not write to
 * file "-": Connection reset by peer", the broken pipe they left it); a full disk as the disk-full sentence.
 */
export function baseBackupFailure(err: unknown, o: Pick<BaseBackupOptions, 'target' | 'pgBasebackup'>, dir: string): BotError {
  if (err instanceof BotError) return err;
  const failed = (code: ErrorCode, said: string) => new BotError(code, `The base backup of ${o.target} failed: ${said}`, { cause: err });
  if (!(err instanceof ToolPipeError)) return failed('pg_dump_failed', String(err));
  if (err.stage === 'canceled') return failed('canceled', whyFailed(err.toolStderr) || err.message);
  if (err.stage === 'write') {
    const code = errnoCode(err.cause);
    return code === 'ENOSPC' || code === 'EDQUOT' ? storageError(err.cause, dir, 'write the base backup') : failed('storage_failed', err.message);
  }
  if (err.stage === 'compressor')
    return failed('compressor_failed', `zstd failed while compressing it: ${firstErrorLine(err.compressorStderr) || err.message}`);
  if (err.stage === 'encryptor') return failed('internal', `encrypting it failed: ${err.message}`);
  // The tool stage: pg_basebackup's own words when it is the one named, else the tap's (chainFailure).
  return failed('pg_dump_failed', err.message.startsWith(o.pgBasebackup) ? whyFailed(err.toolStderr) || err.message : err.message);
}

/**
 * The run: `pg_basebackup -D - -Ft -X none | tap | zstd -T0 | age | tee FILE | sha256`, each pipe handed from one
 * process to the next (postgres/backup/tool-pipe.ts, the logical dump's own chain): the cluster's bytes never pass
 * through Node. The tap keeps the tar's last bytes, where backup_manifest says where the backup starts and ends in
 * the WAL (pg_basebackup prints neither with -X none). Measured on the bench database (bench/base-phases.ts): with
 * the bytes through Node, the run took 1.8× the bare `pg_basebackup | zstd` pipe.
 */
export async function runBaseBackup(o: BaseBackupOptions): Promise<BaseBackup> {
  const now = o.now ?? (() => new Date());
  const clock = o.clock ?? (async () => now());
  const started = await clock();
  const { id, dir } = await reserve(o.root, o.target, stamp(started));
  const encrypted = o.recipients.length > 0;
  const file = `base.tar.zst${encrypted ? '.age' : ''}`;
  const writer = o.remote
    ? o.remote.baseWriter(id, file)
    : await openFileWriter(join(dir, `${file}.partial`), join(dir, file), (err, action) => storageError(err, dir, `${action} the base backup`));
  const cli = encrypted && o.ageEngine?.kind === 'cli' ? { command: o.ageEngine.path, args: o.recipients.flatMap((r) => ['-r', r]) } : undefined;
  const encrypt = encrypted && !cli ? await createEncryptStream(o.recipients, o.ageEngine) : undefined;
  // pg_basebackup's version (for the record) asked beside the run, not after it.
  const version = execa(o.pgBasebackup, ['--version'], { reject: false, stdin: 'ignore' }).then((v) => String(v.stdout).trim());
  // The tap (perl-stages.ts): perl where there is one; else tee and tail, through a named pipe in the base backup's own
  // (0750, the bot's) directory, removed after the run.
  const perl = o.perl === undefined ? await findPerl() : o.perl;
  const fifo = perl ? undefined : join(dir, '.manifest-tail');
  if (fifo) await execa('mkfifo', ['-m', '0600', '--', fifo]);
  return withPgEnv(o.replicationUrl, async (env) => {
    let r: ToolPipeResult;
    try {
      r = await runToolIntoZstd({
        command: o.pgBasebackup,
        args: ['-D', '-', '-Ft', '-X', 'none', '--checkpoint=fast', '--no-password'],
        env,
        zstd: o.zstd,
        level: o.level,
        destination: writer.stream,
        // A local file is written by tee, outside Node; S3's upload reads the chain's end in Node.
        ...(o.remote ? {} : { destinationPath: writer.path }),
        encryptCommand: cli,
        encrypt,
        signal: o.signal,
        rawTail: { bytes: MANIFEST_TAIL, perl: perl ?? undefined, fifo },
        perl,
        onProgress: (p) => p.rawBytes !== undefined && o.onProgress?.(p.rawBytes),
      });
      await writer.commit();
    } catch (err) {
      await writer.abort();
      // Its reserved directory too (QA: every failed or canceled base backup left an empty one behind).
      await rm(dir, { recursive: true, force: true });
      throw baseBackupFailure(err, o, dir);
    }
    if (fifo) await rm(fifo, { force: true });
    // The whole cluster read: said once more, so even a backup shorter than the chain's 1-second ticks reports it.
    if (r.rawBytes !== null) o.onProgress?.(r.rawBytes);
    // Read after pg_basebackup has exited, so after the server ended the backup: never earlier than its real end.
    const finished = await clock();
    const range = WAL_RANGE.exec(r.rawTail?.toString('latin1') ?? '');
    // Without a range nothing can recover from it: neither the stored file nor its directory is kept.
    if (!range) await Promise.all([o.remote?.removeBase({ id, file }).catch(() => undefined), rm(dir, { recursive: true, force: true })]);
    if (!range) throw new BotError('pg_dump_failed', `The base backup of ${o.target} has no WAL range in its backup_manifest: it cannot be recovered.`);
    const record: BaseBackup = {
      id,
      target: o.target,
      file,
      bytes: r.bytes,
      rawBytes: r.rawBytes ?? 0,
      sha256: r.sha256,
      encryption: encrypted ? 'age' : 'none',
      startedAt: started.toISOString(),
      finishedAt: finished.toISOString(),
      timeline: Number(range[1]),
      startLsn: range[2] as string,
      endLsn: range[3] as string,
      pgBasebackupVersion: await version,
    };
    // The record last: a base backup exists once its base.json does.
    if (o.remote) {
      await o.remote.recordBase(BaseBackupSchema.parse(record)).finally(() => rm(dir, { recursive: true, force: true }));
      return record;
    }
    await writeFileAtomically(join(dir, 'base.json'), `${JSON.stringify(BaseBackupSchema.parse(record), null, 2)}\n`);
    return record;
  });
}
