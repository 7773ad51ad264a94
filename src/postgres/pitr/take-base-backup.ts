import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import type { Config, TargetConfig } from '../../config-types.ts';
import { findAgeEngine } from '../../crypto/age-cli.ts';
import { checkRecipients } from '../../crypto/age.ts';
import { ENCRYPTION_ADVICE } from '../../crypto/advice.ts';
import { BotError, isBotError } from '../../errors.ts';
import { findNativeTools, hashFile } from '../backup/native-pipe.ts';
import { findPerl } from '../backup/perl-stages.ts';
import { childOptions } from '../child-pipes.ts';
import { withPgEnv } from '../connection.ts';
import { describeExit, firstErrorLine } from '../failures.ts';
import { serverStampClock } from '../server-clock.ts';
import { findPgProgram, findPgTools, findZstd } from '../tools.ts';
import { type BaseBackup, BaseBackupSchema, runBaseBackup } from './base-backup.ts';
import { pitrInS3 } from './pitr-location.ts';
import { streamProblem } from './stream-problems.ts';

/**
 * A base backup as the CLI (`pg-backup-bot base-backup`) and the `base-backup` worker take it: the same refusals,
 * tools, encryption and read-back check, so a base backup the bot calls good is the same wherever it was asked for.
 */

type PitrConfig = Pick<Config, 'backupDir' | 'compressionLevel' | 'encryption' | 'pgBinDir' | 's3'>;

/** Why this target cannot have a base backup here, in one sentence; null when it can (on either store, S3 or BACKUP_DIR). */
export function baseBackupUnsupported(_config: Pick<Config, 's3'>, target: Pick<TargetConfig, 'name' | 'pitr'>): string | null {
  if (!target.pitr) return `Target ${target.name} has no pitr section in the config file: a base backup needs its replication connection (pitr.urlEnv).`;
  return null;
}

/** A production target without a key to encrypt to is refused, as every backup is (crypto/advice.ts). */
export function unencryptedRefusal(config: Pick<Config, 'encryption'>, target: Pick<TargetConfig, 'name' | 'environment'>): string | null {
  if (config.encryption.recipients.length > 0 || target.environment !== 'production' || config.encryption.optedOut) return null;
  return `Refusing an unencrypted base backup of ${target.name} (production): ${ENCRYPTION_ADVICE}.`;
}

/**
 * Reads what was stored back from disk: its size and sha256 must be the ones hashed while it was written, and its
 * record (base.json) must say so too. Only then is the base backup called good.
 */
export async function verifyStoredBaseBackup(root: string, b: BaseBackup): Promise<void> {
  const dir = join(root, b.target, '_base', b.id);
  const [sha256, bytes] = await Promise.all([hashFile(join(dir, b.file)), stat(join(dir, b.file)).then((st) => st.size)]);
  const record = BaseBackupSchema.parse(JSON.parse(await readFile(join(dir, 'base.json'), 'utf8')));
  if (bytes !== b.bytes || sha256 !== b.sha256 || record.sha256 !== b.sha256 || record.bytes !== b.bytes) {
    throw new BotError(
      'storage_failed',
      `The base backup ${b.id} read back from ${dir} does not match what was written (${bytes} bytes, sha256 ${sha256.slice(0, 12)}…; expected ${b.bytes} bytes, ${b.sha256.slice(0, 12)}…): the disk or the filesystem lost data. Do not count on it; take another one.`,
    );
  }
}

/**
 * The target's slot, created if it does not exist yet, reserving WAL from now (`RESERVE_WAL`, over a replication
 * connection: pg_receivewal's own --create-slot reserves nothing until it first streams). A base backup taken before a
 * new target's receiver first connected would otherwise start at WAL the archive never receives, and recover nothing.
 */
async function reserveWal(psql: string, pitr: NonNullable<TargetConfig['pitr']>, signal: AbortSignal | undefined): Promise<void> {
  await withPgEnv(pitr.url, async (env) => {
    // The slot name is checked by the config schema ([a-z0-9_]); it reaches psql as one argv word, never a shell.
    const r = await execa(psql, ['-X', '-q', '-d', 'replication=true', '-c', `CREATE_REPLICATION_SLOT ${pitr.slot} PHYSICAL RESERVE_WAL`], {
      ...childOptions(signal),
      env,
      extendEnv: false,
      stdin: 'ignore',
      all: true,
      buffer: true,
    });
    if (r.failed && !/already exists/.test(String(r.all ?? ''))) {
      throw new BotError('pg_dump_failed', `Could not create the replication slot ${pitr.slot}: ${firstErrorLine(String(r.all ?? '')) || describeExit(r)}`);
    }
  });
}

/**
 * The tools, the run, the read-back. Throws a BotError whose sentence says what failed and what to change.
 * `reserveWal`: make sure the target's slot exists first (the workers, which stream that slot; not the CLI, whose
 * slot nobody might ever read again).
 */
export async function takeBaseBackup(
  config: PitrConfig,
  target: TargetConfig,
  o: {
    signal?: AbortSignal | undefined;
    now?: () => Date;
    reserveWal?: boolean;
    onProgress?: (rawBytes: number) => void;
    /** Said when the base backup is stamped by this host's clock rather than the server's (a log line, a CLI warning). */
    warn?: (message: string) => void;
  } = {},
): Promise<BaseBackup> {
  const refused = baseBackupUnsupported(config, target) ?? unencryptedRefusal(config, target);
  if (refused || !target.pitr) throw new BotError(refused?.startsWith('Refusing') ? 'encryption_required' : 'bad_request', refused ?? '');
  const encrypted = config.encryption.recipients.length > 0;
  // A key the age library cannot use is refused before the cluster is read, as a logical backup refuses it (QA: a
  // key with a bad checksum failed the chain halfway, said as pg_basebackup's broken pipe).
  if (encrypted) checkRecipients(config.encryption.recipients);
  // The tools asked at once, not one after the other: each answer is a process start (~0.05 s), and the CLI's
  // trace showed about 0.3 s of them in a row before pg_basebackup began. Awaited in a fixed order, so that with
  // several missing the sentence is always pg_dump's first; the others' failures are held until then. The hasher's
  // probe is remembered per process.
  const asked = {
    tools: findPgTools({ serverMajor: 10, ...(config.pgBinDir ? { pgBinDir: config.pgBinDir } : {}) }),
    zstd: findZstd(),
    age: encrypted ? findAgeEngine() : Promise.resolve(undefined),
    hasher: findNativeTools(),
    tap: findPerl(),
  };
  for (const p of Object.values(asked)) p.catch(() => undefined);
  const tools = await asked.tools;
  const pgBasebackup = await findPgProgram('pg_basebackup', tools.pgDump, tools.major);
  if (!pgBasebackup) throw new BotError('pg_tool_missing', `pg_basebackup is not installed: install postgresql-client-${tools.major}.`);
  const zstd = await asked.zstd;
  const ageEngine = await asked.age;
  await asked.hasher;
  await asked.tap;
  // S3 as the primary store: streamed into the bucket, its size there checked before its record is written.
  // Loaded only then: the S3 client costs every local base backup ~0.1 s of its start.
  const remote = pitrInS3(config) ? (await import('./s3-archive.ts')).primaryPitrStore(config, target.name) : null;
  try {
    if (o.reserveWal) {
      const psql = await findPgProgram('psql', tools.pgDump, tools.major);
      if (!psql) throw new BotError('pg_tool_missing', `psql is not installed: install postgresql-client-${tools.major}.`);
      await reserveWal(psql, target.pitr, o.signal);
    }
    // Said once the base backup is taken: before a failure (a server down altogether) it would only be noise (QA).
    let clockFallback: string | undefined;
    const b = await runBaseBackup({
      target: target.name,
      root: config.backupDir,
      replicationUrl: target.pitr.url,
      pgBasebackup,
      zstd,
      level: config.compressionLevel,
      recipients: config.encryption.recipients,
      ageEngine,
      ...(o.signal ? { signal: o.signal } : {}),
      ...(o.now ? { now: o.now } : {}),
      // The server's clock over the target's ordinary connection (the one the RPO monitor samples); when the server
      // cannot be asked that way (a replication-only pg_hba line), this host's, corrected by the difference the first
      // reading measured, or as it is when there was none (server-clock.ts serverStampClock).
      clock: serverStampClock(target.url, o.now ?? (() => new Date()), (why) => (clockFallback ??= why)),
      ...(o.onProgress ? { onProgress: o.onProgress } : {}),
      remote: remote ?? undefined,
    });
    if (!remote) await verifyStoredBaseBackup(config.backupDir, b);
    if (clockFallback !== undefined)
      o.warn?.(
        `The base backup of ${target.name} is stamped by this host's clock: the server's could not be read over its ordinary connection (${clockFallback}).`,
      );
    return b;
  } catch (err) {
    // What the server refused, said as what to change there (the same sentences as the WAL stream's).
    const said = isBotError(err) ? err.userMessage : String(err);
    const fix = streamProblem(said);
    if (!fix) throw err;
    throw new BotError('pg_dump_failed', `The base backup of ${target.name} failed: ${fix}.`, { cause: err, detail: said });
  } finally {
    remote?.client.destroy();
  }
}
