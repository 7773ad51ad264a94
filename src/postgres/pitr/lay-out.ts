import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { appendFile, chmod, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { execa } from 'execa';
import { findAgeEngine } from '../../crypto/age-cli.ts';
import { type AgeIdentity, createDecryptStream } from '../../crypto/age.ts';
import { BotError } from '../../errors.ts';
import { errnoCode } from '../../storage/fs-util.ts';
import { counter } from '../stream-counter.ts';
import type { BaseBackup } from './base-backup.ts';
import { unpackNative } from './unpack-base.ts';

/** The file a lay out holds its directory by while it writes there (removed when done; with it on undo). */
const CLAIM = '.pgbb-restore-pitr.claim';

/** What a lay out put in place, to be taken away again: the directory it made, or what it wrote into an empty one. */
export interface LaidOut {
  /** Removes what this lay out created, never what was there before. */
  undo(): Promise<void>;
}

const canceledError = () => new BotError('canceled', 'restore-pitr was canceled.');

/**
 * Lays a base backup out in an empty data directory and sets it to recover to `at`: the tar unpacked, then
 * `recovery.signal`, and in postgresql.auto.conf a `restore_command` fetching WAL through the bot, the target
 * time, the action at the target, and no archiving of its own. A lay out that fails, or is canceled by `signal`
 * (its tools stopped), takes away what it created before it throws; after it, `undo` does (a cancel later on).
 */
export async function layOutRecovery(o: {
  root: string;
  base: BaseBackup;
  dataDir: string;
  identity: AgeIdentity | undefined;
  /** The identity's file: with the age CLI installed, it decrypts (several times faster than the library). */
  identityFile?: string | undefined;
  at: Date;
  /** The timeline to recover along (pitr-restore.ts chooseRecovery): the base backup's, or a later one it follows. */
  timeline: number;
  action: 'promote' | 'pause' | 'shutdown';
  restoreCommand: string;
  signal?: AbortSignal | undefined;
}): Promise<LaidOut> {
  if (o.signal?.aborted) throw canceledError();
  // The first directory made (undefined: DIR was there already): removed whole, parents made for it included. Those
  // parents 0755, whatever the umask: the server's user must pass through them (mkdir -p gave them DIR's 0700, QA).
  const parent = dirname(o.dataDir);
  const madeAbove = await mkdir(parent, { recursive: true, mode: 0o755 });
  for (let d = parent; madeAbove && d.length >= madeAbove.length; d = dirname(d)) await chmod(d, 0o755);
  const madeSelf = await mkdir(o.dataDir, { mode: 0o700 }).then(
    () => true,
    (err: unknown) => {
      if (errnoCode(err) !== 'EEXIST') throw err;
      return false;
    },
  );
  const made = madeAbove ?? (madeSelf ? o.dataDir : undefined);
  // Claimed before it is read: of two restore-pitr runs into one directory at once, both could find it empty (or
  // both find it theirs to make) and unpack into each other; exactly one creates the claim (O_EXCL).
  const claim = join(o.dataDir, CLAIM);
  await writeFile(claim, `${process.pid}\n`, { flag: 'wx', mode: 0o600 }).catch(async (err: unknown) => {
    if (errnoCode(err) !== 'EEXIST') throw err;
    const holder = (await readFile(claim, 'utf8').catch(() => '?')).trim();
    throw new BotError(
      'bad_request',
      `${o.dataDir} is being laid out by another restore-pitr (pid ${holder}, as ${claim} says): run one at a time, each into its own empty directory. If no such process runs, remove ${claim}.`,
    );
  });
  if (!made && (await readdir(o.dataDir)).some((n) => n !== CLAIM)) {
    await rm(claim, { force: true });
    throw await notEmpty(o.dataDir);
  }
  // From here on everything in it is ours (it was empty, or we made it): a lay out that fails or is canceled leaves
  // it as it was, so running restore-pitr once more needs no clean-up by hand (QA: a wrong key left it behind).
  const undo = async () => {
    if (made) return void (await rm(made, { recursive: true, force: true }));
    for (const name of await readdir(o.dataDir).catch(() => [])) await rm(join(o.dataDir, name), { recursive: true, force: true });
  };
  try {
    await unpackChecked(o);
    if (o.signal?.aborted) throw canceledError();
    await writeFile(join(o.dataDir, 'recovery.signal'), '');
    const q = (v: string) => `'${v.replace(/'/g, "''")}'`;
    await appendFile(
      join(o.dataDir, 'postgresql.auto.conf'),
      [
        '',
        `# written by pg-backup-bot restore-pitr from ${o.base.id}`,
        `restore_command = ${q(o.restoreCommand)}`,
        // PostgreSQL's own timestamptz input: "2026-12-04 18:55:33.003+00" (it refuses the ISO "T…Z" form).
        `recovery_target_time = ${q(o.at.toISOString().replace('T', ' ').replace('Z', '+00'))}`,
        `recovery_target_action = ${q(o.action)}`,
        // Named, not 'latest': the timeline the window was judged along, whatever else the archive holds.
        `recovery_target_timeline = ${q(String(o.timeline))}`,
        "archive_mode = 'off'",
        // Nobody reads the database half recovered (QA: pg_ctl returned at "ready to accept read-only connections",
        // and a query then saw 0 rows of a table the target held): connections wait for the end of recovery. Paused
        // at the target, it is read to judge the moment, so it answers then.
        ...(o.action === 'pause' ? [] : ["hot_standby = 'off'"]),
        '',
      ].join('\n'),
    );
  } catch (err) {
    await undo();
    throw o.signal?.aborted ? canceledError() : err;
  }
  await rm(claim, { force: true });
  return { undo };
}

/**
 * DIR is not empty: refused. A base backup unpacked there and never started (backup_label, which a started server
 * renames) is most likely an earlier restore-pitr killed before it could clean up (kill -9, a power cut): said so.
 */
async function notEmpty(dataDir: string): Promise<BotError> {
  const unstarted = await stat(join(dataDir, 'backup_label')).catch(() => null);
  // Laid out to the end (recovery.signal, the bot's restore_command) and never started: a restore-pitr that finished,
  // whose cluster is waiting to be started (QA: told to remove it as a killed run's leftover).
  const conf =
    unstarted && (await stat(join(dataDir, 'recovery.signal')).catch(() => null))
      ? await readFile(join(dataDir, 'postgresql.auto.conf'), 'utf8').catch(() => '')
      : '';
  const target = /^(recovery_target(?:_time|_lsn)?) = (.*)$/m.exec(conf);
  const hint = conf.includes('wal-fetch')
    ? ` It holds a cluster an earlier restore-pitr laid out (recovery.signal, the bot's restore_command) and that was never started${target ? ` (${target[1]} = ${target[2]})` : ''}: if that run finished, start it as it said (pg_ctl -D ${dataDir} start, as the cluster's owner; if it was started and failed, its recovery.log says why); if it was killed, or to recover to another moment, remove it (\`rm -rf ${dataDir}\`) and run restore-pitr again.`
    : unstarted
      ? ` It holds a base backup laid out and never started (backup_label): most likely what an earlier restore-pitr left when it was killed before it could clean up. If nothing in it is needed, remove it (\`rm -rf ${dataDir}\`) and run restore-pitr again.`
      : '';
  return new BotError('bad_request', `${dataDir} is not empty: restore-pitr lays a cluster out only in an empty directory.${hint}`);
}

/** The age library's way (no age CLI): the stored file read, hashed and decrypted in Node, then zstd | tar. */
async function unpackThroughNode(path: string, dataDir: string, identity: AgeIdentity | undefined, signal: AbortSignal | undefined): Promise<string> {
  const hash = createHash('sha256');
  const source = createReadStream(path).pipe(counter(() => undefined, hash));
  const plain = identity ? await createDecryptStream(source, identity, []) : source;
  const stop = { ...(signal ? { cancelSignal: signal } : {}), forceKillAfterDelay: 5_000 } as const;
  // Its stderr kept for the failure's message; never its stdout, the data (piped below, at once).
  const zstd = execa('zstd', ['-dc'], { stdin: 'pipe', stdout: 'pipe', buffer: { stdout: false, stderr: true }, ...stop });
  const tar = execa('tar', ['-xf', '-', '-C', dataDir], { stdin: 'pipe', ...stop });
  const opts = signal ? { signal } : {};
  await Promise.all([pipeline(plain, zstd.stdin, opts), pipeline(zstd.stdout, tar.stdin, opts), zstd, tar]);
  return hash.digest('hex');
}

/** The base backup unpacked into `o.dataDir` and its sha256 checked against the record. */
async function unpackChecked(o: {
  root: string;
  base: BaseBackup;
  dataDir: string;
  identity: AgeIdentity | undefined;
  identityFile?: string | undefined;
  signal?: AbortSignal | undefined;
}) {
  const dir = join(o.root, o.base.target, '_base', o.base.id);
  if (o.base.encryption === 'age' && !o.identity)
    throw new BotError('decryption_failed', `Base backup ${o.base.id} is encrypted: set BACKUP_ENCRYPTION_IDENTITY_FILE.`);
  const engine = o.base.encryption === 'age' && o.identityFile ? await findAgeEngine() : undefined;
  const native = o.base.encryption === 'none' || (engine?.kind === 'cli' && o.identityFile);
  const sha256 = native
    ? // The tools chained by descriptor: with the bytes through Node, the unpack took a second more on the bench.
      (
        await unpackNative({
          path: join(dir, o.base.file),
          dataDir: o.dataDir,
          decrypt: engine?.kind === 'cli' && o.identityFile ? { agePath: engine.path, identityFile: o.identityFile } : undefined,
          signal: o.signal,
        })
      ).sha256
    : await unpackThroughNode(join(dir, o.base.file), o.dataDir, o.identity, o.signal);
  if (o.signal?.aborted) throw canceledError();
  if (sha256 !== o.base.sha256) {
    throw new BotError(
      'storage_failed',
      `Base backup ${o.base.id} does not match its sha256: the stored file is damaged; nothing of it is left in ${o.dataDir}.`,
    );
  }
}
