import { cliFailure } from './cli-failure.ts';
import { readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findTarget, type Config } from '../config.ts';
import { missingBackupDir } from './backup-dir.ts';
import { parseRestorePitrArgs, RESTORE_PITR_USAGE } from './pitr-args.ts';
import { afterStart, archiveEnds } from './pitr-next-steps.ts';
import { loadIdentity } from '../crypto/age.ts';
import { BotError } from '../errors.ts';
import type { LaidOut } from '../postgres/pitr/lay-out.ts';
import { chooseRecovery, layOutRecovery, listBaseBackups, parseRecoveryTime } from '../postgres/pitr/pitr-restore.ts';
import { recoverableWal } from '../postgres/pitr/partial-store.ts';
import { formatBytes } from '../format.ts';
import { pitrInS3 } from '../postgres/pitr/pitr-location.ts';
import { type PitrReservation, READER_TTL_MS, reservePitrBase } from '../postgres/pitr/pitr-readers.ts';
import { switchedSentence } from '../postgres/pitr/switched.ts';
import { type NewestCommit, newestArchivedCommit, settleRecoveryTarget, waldumpGuess, waldumpOf } from '../postgres/pitr/last-commit.ts';
import { setAsideBases } from '../postgres/pitr/wal-index.ts';
import { recoverableWindow, segmentOf, windowAlong } from '../postgres/pitr/window.ts';
import { checkServerAccess, pgCtlPath, shareFetchedWal } from '../postgres/pitr/server-access.ts';

type Io = { out(l: string): void; err(l: string): void };

/** Shell-quoted for restore_command, which PostgreSQL runs through /bin/sh. */
const sh = (v: string) => `'${v.replace(/'/g, `'\\''`)}'`;

/**
 * `pg-backup-bot restore-pitr <target> --time=… --data-dir=DIR`: the real recovery, on a new host. The base
 * backup that ended before the time is laid out in DIR with `recovery.signal`, a restore_command that fetches
 * each WAL file through `pg-backup-bot wal-fetch` (sha256 checked, decrypted), the target time and its action;
 * then it says how to start the server.
 */
export async function cliRestorePitr(args: string[], deps: { config: Config; io: Io; signal?: AbortSignal }): Promise<number> {
  const { config, io, signal } = deps;
  const parsed = parseRestorePitrArgs(args);
  if ('problem' in parsed) {
    io.err(`restore-pitr: ${parsed.problem}\n${RESTORE_PITR_USAGE}`);
    return 2;
  }
  const { target: targetName, time, dataDir, action, from, runAs, timeline: along } = parsed;
  // Ctrl-C, SIGTERM, a hangup (main.ts): the tools are stopped, what this run laid out is removed, its hold released.
  const halt = () => {
    if (signal?.aborted) throw new BotError('canceled', 'restore-pitr was canceled.');
  };
  let reading: PitrReservation | undefined;
  let laidOut: LaidOut | undefined;
  let newest: Promise<NewestCommit | null | undefined> = Promise.resolve(undefined);
  try {
    const target = findTarget(config, targetName);
    // `latest`: as late as the archive reaches, its window's end (the base backup chosen for it), then its newest commit.
    const latest = time.trim().toLowerCase() === 'latest';
    // With S3 as the primary store the bucket is the archive: what the time needs is always fetched from it, into a
    // directory of its own beside the worker's spool (BACKUP_DIR/_restore-pitr), which the recovery then reads.
    const inS3 = pitrInS3(config);
    const root = inS3 ? join(config.backupDir, '_restore-pitr') : config.backupDir;
    const asked = latest ? null : parseRecoveryTime(time);
    // A BACKUP_DIR that is not there (or empty) is not "no base backup yet": where it looked, said (QA).
    const noDir = inS3 || from === 's3' ? null : await missingBackupDir(config);
    if (noDir)
      throw new BotError(
        'backup_not_found',
        `${noDir} restore-pitr looks for the base backups and WAL of ${target.name} in ${resolve(root, target.name)}.${config.s3 ? ` The archive's copy in S3 (s3://${config.s3.bucket}) is read with --from=s3.` : ''}`,
      );
    // The key before anything is fetched or chosen: a file that cannot be read is said first.
    const idFile = config.encryption.identityFile;
    const identity = idFile ? await loadIdentity(idFile, 'restore-pitr needs it to decrypt the base backup and the WAL') : undefined;
    // For `latest`, everything the bucket holds after its newest base backup.
    if (from === 's3' || inS3) {
      // Shared with the server's user only where restore-pitr made the directory (never a live worker's archive, whose
      // group would then open the whole store to it): else the access check below says what to grant.
      const ours = inS3 || !(await stat(join(root, target.name, '_wal')).catch(() => null));
      io.out(await downloadFromS3(config, root, target.name, asked ?? new Date(Date.now() + 365 * 86_400_000), { latest, along }, signal));
      if (ours) await shareFetchedWal(root, target.name, runAs);
    }
    // The archive read once: `latest`'s window end (now when there is none: chooseRecovery then says why) and the choice.
    const [bases, archived] = await Promise.all([listBaseBackups(root, target.name), recoverableWal(root, target.name)]);
    const end = asked ? null : along === undefined ? recoverableWindow(bases, archived) : windowAlong(bases, archived, along);
    const at = asked ?? end?.to ?? new Date();
    // `latest` is the newest the archive can recover, not the newest it holds, after a promotion: said first (QA).
    if (end?.switched) io.err(`Not the newest data: ${switchedSentence(target.name, end.switched)}`);
    const { base, timeline } = chooseRecovery(bases, archived, at, await setAsideBases(root, target.name), new Date(), along);
    const newestTimeline = (end ?? recoverableWindow(bases, archived))?.timeline ?? timeline;
    const bin = fileURLToPath(new URL('../../bin/pg-backup-bot.js', import.meta.url));
    const firstSegment = segmentOf(base.startLsn, base.timeline);
    const unchecked = await checkServerAccess(runAs, {
      root,
      target: target.name,
      firstSegment,
      identityFile: config.encryption.identityFile,
      node: process.execPath,
      bin,
      dataDir,
    });
    if (unchecked) io.err(unchecked);
    halt();
    // What wal-fetch needs, said in the command itself (the server runs it with its own environment): where the
    // archive is and the key, nothing else — no config file, whose targets' variables the server would not have.
    const env = [
      ['BACKUP_DIR', resolve(root)],
      ...(config.encryption.identityFile ? [['BACKUP_ENCRYPTION_IDENTITY_FILE', resolve(config.encryption.identityFile)]] : []),
    ].map(([k, v]) => `${k}=${sh(v as string)}`);
    // Retention must not delete the base backup or its WAL while the recovery reads them: reserved here, renewed by
    // every wal-fetch, expiring a day after the last one (pitr-readers.ts). Checked again after reserving: a retention
    // run that decided before the reservation may just have deleted it. (S3 as the primary store: the hold is on the
    // fetched copy, which no retention deletes; a deletion in the bucket during the download fails the download.)
    reading = await reservePitrBase(root, target.name, base.id, {
      reader: `restore-pitr to ${at.toISOString()} into ${resolve(dataDir)}`,
      ttlMs: READER_TTL_MS,
      renewEveryMs: 0,
    });
    if (!(await listBaseBackups(root, target.name)).some((b) => b.id === base.id)) {
      throw new BotError('storage_failed', `Base backup ${base.id} was deleted by retention just now; run restore-pitr again.`);
    }
    // A segment the prefetcher has ready (fetched, checked, renamed into place whole) is taken by the shell's own mv:
    // starting Node for it cost recovery ~60 ms a segment, most of the bench's gap to pgBackRest's C archive-get.
    const fetch = `${env.join(' ')} ${sh(process.execPath)} ${sh(bin)} wal-fetch ${sh(target.name)} %f "%p" --reader=${reading.token}`;
    // And a file the archive does not hold (recovery asks for the segment after the last and for history files it
    // probes) is answered "not archived" by the shell too: no index entry, whole or partial, means wal-fetch's answer.
    const wal = join(resolve(root), target.name, '_wal');
    // An archive the server's user may not enter is not "not archived": then wal-fetch runs, and says why in the log.
    const held = `{ test -e ${sh(wal)}/%f.json || test -e ${sh(wal)}/_partial/%f.json || ! test -x ${sh(wal)}; }`;
    const restoreCommand = `mv -f -- pg_wal/.pgbb-prefetch/%f "%p" 2>/dev/null || { ${held} && ${fetch}; }`;
    // The newest WAL is fetched and read while the base backup is unpacked, by pg_waldump of the major pg_basebackup
    // reported; checked against the laid-out PG_VERSION after, and read again in the rare case they differ.
    const guess = await waldumpGuess(base);
    const newestWith = (pgWaldump: Promise<string | null>) =>
      // Caught at once: awaited only after the layout, a rejection meanwhile would end the process as unhandled.
      newestArchivedCommit({ root, target: target.name, base, timeline, identity, pgWaldump, signal }).catch(() => undefined);
    let waldumpFound: (bin: string | null) => void = () => undefined;
    const first = newestWith(guess ? Promise.resolve(guess) : new Promise<string | null>((r) => (waldumpFound = r)));
    newest = first;
    // Whatever ends it (a failure, a cancel), the pg_waldump search ends too: no waiting on a binary never found.
    signal?.addEventListener('abort', () => waldumpFound(null));
    laidOut = await layOutRecovery({
      root,
      base,
      dataDir: resolve(dataDir),
      identity,
      identityFile: config.encryption.identityFile,
      at,
      timeline,
      action,
      restoreCommand,
      signal,
    }).catch((err: unknown) => {
      waldumpFound(null);
      throw err;
    });
    const waldump = await waldumpOf(resolve(dataDir));
    waldumpFound(waldump);
    const firstFound = await first;
    if (guess && guess !== waldump) newest = newestWith(Promise.resolve(waldump));
    const found = guess && guess !== waldump ? await newest : firstFound;
    halt();
    const settled = await settleRecoveryTarget({ base, dataDir: resolve(dataDir), at: latest ? null : at, newest: found, pgWaldump: waldump !== null });
    const port = await laidOutPort(dataDir);
    const pgCtl = await pgCtlPath(dataDir);
    halt();
    io.out(
      [
        `Laid out base backup ${base.id} (WAL ${base.startLsn}–${base.endLsn}) in ${resolve(dataDir)}, ${action} at the target. ${settled.said}`,
        // Across a promotion (lane.ts), or along a timeline asked for: said, as it is not the base backup's, or not the newest.
        ...(along !== undefined
          ? [`It recovers along timeline ${timeline}, as asked (--timeline), not the newest one the archive holds.`]
          : newestTimeline > timeline
            ? [
                `It recovers along timeline ${timeline}, the history before the promotion to timeline ${newestTimeline} (the moment is before timeline ${newestTimeline}'s window): what the old primary had then, which may include commits it wrote after timeline ${newestTimeline} forked and the promoted server never received.`,
              ]
            : timeline !== base.timeline
              ? [`It recovers along timeline ${timeline} (the promotion's history file, archived), from a base backup taken on timeline ${base.timeline}.`]
              : []),
        ...(latest && end ? [archiveEnds(target.name, end, new Date(), along)] : []),
        // Only what the laid-out files say: a port the source was given on its command line is not in them (QA).
        `It will listen on port ${port ? `${port}, as the base backup's configuration files set it` : "5432, PostgreSQL's default (the base backup's configuration files set no port; a port the source was started with on its command line is not in them)"}: on a host where that port is taken (the source's own), start it with \`-o "-p <free port>"\` added to pg_ctl.`,
        `Start it as ${runAs} (--run-as), who owns the cluster and must read BACKUP_DIR and the identity file:`,
        `  chown -R ${runAs}: ${resolve(dataDir)} && runuser -u ${runAs} -- ${pgCtl} -D ${resolve(dataDir)} -l ${resolve(dataDir)}/recovery.log start`,
        ...afterStart({ action, settled, runAs, dataDir: resolve(dataDir), pgCtl, port }),
        // With S3 as the primary store, what was fetched stays beside the spool (a later restore fetches only what is new).
        ...(inS3
          ? [
              `The base backup and WAL fetched for it stay in ${resolve(root, target.name)}, which the recovery reads until it has left recovery; no retention run deletes them. Then \`rm -rf ${resolve(root, target.name)}\` frees that space.`,
            ]
          : []),
      ].join('\n'),
    );
    return 0;
  } catch (err) {
    // Nothing kept: what this run laid out (never what was in DIR before), its hold, the search for the newest commit.
    await laidOut?.undo();
    await Promise.all([reading?.release(), newest]);
    if (signal?.aborted) io.err(`restore-pitr canceled; nothing was kept in ${resolve(dataDir)}.`);
    else io.err(`Point-in-time restore FAILED: ${cliFailure(err)}`);
    return 1;
  }
}

/**
 * The base backup and WAL the time needs, from S3 into `root` (offsite-fetch.ts): `--from=s3` from the archive's copy
 * (S3_MODE=copy), and always with S3 as the primary store.
 */
async function downloadFromS3(
  config: Config,
  root: string,
  target: string,
  at: Date,
  fromWindow: { latest: boolean; along?: number | undefined },
  signal?: AbortSignal,
): Promise<string> {
  // Loaded here only: the S3 client costs every restore-pitr ~0.1 s of its start, and most read BACKUP_DIR.
  const [{ s3PitrStore }, { fetchFromOffsite }] = await Promise.all([import('../postgres/pitr/s3-pitr-store.ts'), import('../postgres/pitr/offsite-fetch.ts')]);
  const remote = s3PitrStore(config, target);
  if (!remote) throw new BotError('config_invalid', '--from=s3 reads the WAL archive in S3: set S3_BUCKET (and S3_MODE) as the workers have it.');
  try {
    const got = await fetchFromOffsite({ root, remote, at, fromWindow, signal, markDamaged: pitrInS3(config) });
    return `Fetched base backup ${got.base.id} and ${got.segments} WAL file(s) (${formatBytes(got.bytes)} new) from ${remote.describe()} into ${resolve(root)}.`;
  } finally {
    remote.client.destroy();
  }
}

/** The port the laid-out cluster will listen on: the last `port` its config files set (auto.conf read last, as the server does). */
async function laidOutPort(dataDir: string): Promise<string | null> {
  let port: string | null = null;
  for (const file of ['postgresql.conf', 'postgresql.auto.conf']) {
    const text = await readFile(join(dataDir, file), 'utf8').catch(() => '');
    for (const m of text.matchAll(/^\s*port\s*=\s*'?(\d+)'?/gm)) port = m[1] ?? port;
  }
  return port;
}
