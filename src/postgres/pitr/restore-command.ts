import { join, resolve } from 'node:path';
import { PREFETCH_DIR } from './wal-prefetch.ts';

/** Shell-quoted for restore_command, which PostgreSQL runs through /bin/sh. */
const sh = (v: string) => `'${v.replace(/'/g, `'\\''`)}'`;

/**
 * restore-pitr's restore_command: fixed shell around quoted values (paths, the target's name, a hex token), never
 * text a user typed. PostgreSQL runs it once per file with the data directory as its working directory.
 */
export function restoreCommandFor(o: { root: string; target: string; identityFile?: string | undefined; node: string; bin: string; token: string }): string {
  // What wal-fetch needs, said in the command itself (the server runs it with its own environment): where the
  // archive is and the key, nothing else — no config file, whose targets' variables the server would not have.
  const env = [['BACKUP_DIR', resolve(o.root)], ...(o.identityFile ? [['BACKUP_ENCRYPTION_IDENTITY_FILE', resolve(o.identityFile)]] : [])]
    .map(([k, v]) => `${k}=${sh(v as string)}`)
    .join(' ');
  const run = (verb: string, dest: string) => `${env} ${sh(o.node)} ${sh(o.bin)} ${verb} ${sh(o.target)} %f ${dest} --reader=${o.token}`;
  // A segment the prefetcher has ready (fetched, checked, renamed into place whole) is taken by the shell's own mv:
  // starting Node for it cost recovery ~60 ms a segment, most of the bench's gap to pgBackRest's C archive-get.
  const fetch = run('wal-fetch', '"%p"');
  // And a file the archive does not hold (recovery asks for the segment after the last and for history files it
  // probes) is answered "not archived" by the shell too: no index entry, whole or partial, means wal-fetch's answer.
  const wal = join(resolve(o.root), o.target, '_wal');
  // An archive the server's user may not enter is not "not archived": then wal-fetch runs, and says why in the log.
  const held = `{ test -e ${sh(wal)}/%f.json || test -e ${sh(wal)}/_partial/%f.json || ! test -x ${sh(wal)}; }`;
  // The first segment taken from those restore-pitr staged (wal-stage.ts) starts the read-ahead in the background,
  // once (mkdir is atomic), as the server's user: by the time recovery has replayed the staged ones it is ahead.
  // Each segment taken so is named in .last, as wal-fetch names one it fetched itself: the prefetcher, started after
  // recovery may already have taken several staged ones, reads on from there instead of fetching them again.
  const ahead = `{ ! mkdir pg_wal/${PREFETCH_DIR}/.started 2>/dev/null || ${run('wal-prefetch', `pg_wal/${PREFETCH_DIR}`)} >/dev/null 2>&1 & }`;
  const taken = `echo %f 2>/dev/null > pg_wal/${PREFETCH_DIR}/.last`;
  return `{ mv -f -- pg_wal/${PREFETCH_DIR}/%f "%p" 2>/dev/null && { ${taken}; ${ahead}; }; } || { ${held} && ${fetch}; }`;
}
