import { counter } from '../stream-counter.ts';
import { createHash } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { execa } from 'execa';
import { z } from 'zod';
import type { AgeEngine } from '../../crypto/age-cli.ts';
import { createEncryptStream } from '../../crypto/age.ts';
import { BotError } from '../../errors.ts';
import { openFileWriter } from '../../storage/file-writer.ts';
import { errnoCode, storageError, writeFileAtomically } from '../../storage/fs-util.ts';
import { childOptions, yieldCpu } from '../child-pipes.ts';
import { withPgEnv } from '../connection.ts';
import { describeExit, firstErrorLine } from '../failures.ts';
import { collectOutput } from '../output-tail.ts';

/**
 * A base backup for point-in-time recovery: `pg_basebackup -D - -Ft -X none` over a replication connection,
 * streamed (no temporary copy of the cluster) through zstd and age into `<BACKUP_DIR>/<target>/_base/<id>/`,
 * hashed on the way. The tar holds PostgreSQL's own `backup_label` and `backup_manifest`; the WAL it needs comes
 * from the WAL archive (-X none), from its start point to its end point, both recorded here.
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
  /** Bytes of the cluster read from pg_basebackup so far, on every chunk (the caller throttles). */
  onProgress?: (rawBytes: number) => void;
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

export async function runBaseBackup(o: BaseBackupOptions): Promise<BaseBackup> {
  const now = o.now ?? (() => new Date());
  const started = now();
  const { id, dir } = await reserve(o.root, o.target, stamp(started));
  const encrypted = o.recipients.length > 0;
  const file = `base.tar.zst${encrypted ? '.age' : ''}`;
  const writer = await openFileWriter(join(dir, `${file}.partial`), join(dir, file), (err, action) => storageError(err, dir, `${action} the base backup`));
  const hash = createHash('sha256');
  let bytes = 0;
  const counting = counter((n) => (bytes += n), hash);
  return withPgEnv(o.replicationUrl, async (env) => {
    const opts = { ...childOptions(o.signal), env, extendEnv: false } as const;
    const base = yieldCpu(
      execa(o.pgBasebackup, ['-D', '-', '-Ft', '-X', 'none', '--checkpoint=fast', '--no-password'], {
        ...opts,
        stdin: 'ignore',
        stdout: 'pipe',
        stderr: 'pipe',
      }),
    );
    const zstd = yieldCpu(
      execa(o.zstd, ['-c', '-q', '-T0', `-${o.level}`], {
        ...opts,
        env: { PATH: process.env.PATH ?? '' },
        stdin: 'pipe',
        stdout: 'pipe',
        stderr: 'pipe',
        lines: false,
      }),
    );
    const baseErr = collectOutput(base.stderr);
    let rawBytes = 0;
    // backup_manifest is the tar's last member: its WAL-Ranges (where the backup starts and ends in the WAL) are in
    // the stream's last bytes, kept as they pass.
    const last: Buffer[] = [];
    let kept = 0;
    base.stdout.on('data', (c: Buffer) => {
      rawBytes += c.length;
      o.onProgress?.(rawBytes);
      last.push(c);
      kept += c.length;
      while (last.length > 1 && kept - (last[0] as Buffer).length >= MANIFEST_TAIL) kept -= (last.shift() as Buffer).length;
    });
    try {
      const toZstd = pipeline(base.stdout, zstd.stdin);
      const encrypt = encrypted ? [await createEncryptStream(o.recipients, o.ageEngine)] : [];
      const out = encrypt.length ? pipeline(zstd.stdout, encrypt[0] as Transform, counting, writer.stream) : pipeline(zstd.stdout, counting, writer.stream);
      const [b, z] = await Promise.all([base, zstd, toZstd, out]);
      if (b.failed) throw new BotError('pg_dump_failed', `The base backup of ${o.target} failed: ${firstErrorLine(baseErr.text()) || describeExit(b)}`);
      if (z.failed) throw new BotError('pg_dump_failed', `The base backup of ${o.target} failed: zstd ${describeExit(z)}`);
      await writer.commit();
    } catch (err) {
      base.kill('SIGTERM');
      zstd.kill('SIGTERM');
      await writer.abort();
      throw err instanceof BotError
        ? err
        : new BotError('pg_dump_failed', `The base backup of ${o.target} failed: ${firstErrorLine(baseErr.text()) || String(err)}`, { cause: err });
    }
    const range = WAL_RANGE.exec(Buffer.concat(last).toString('latin1'));
    if (!range) throw new BotError('pg_dump_failed', `The base backup of ${o.target} has no WAL range in its backup_manifest: it cannot be recovered.`);
    const version = (await execa(o.pgBasebackup, ['--version'], { reject: false })).stdout.trim();
    const record: BaseBackup = {
      id,
      target: o.target,
      file,
      bytes,
      rawBytes,
      sha256: hash.digest('hex'),
      encryption: encrypted ? 'age' : 'none',
      startedAt: started.toISOString(),
      finishedAt: now().toISOString(),
      timeline: Number(range[1]),
      startLsn: range[2] as string,
      endLsn: range[3] as string,
      pgBasebackupVersion: version,
    };
    // The record last: a base backup exists once its base.json does.
    await writeFileAtomically(join(dir, 'base.json'), `${JSON.stringify(BaseBackupSchema.parse(record), null, 2)}\n`);
    return record;
  });
}
