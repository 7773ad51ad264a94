import { finished } from 'node:stream/promises';
import { execa } from 'execa';
import { childOptions, yieldCpu } from '../child-pipes.ts';
import { withPgEnv } from '../connection.ts';
import { describeExit, firstErrorLine } from '../failures.ts';
import { collectOutput } from '../output-tail.ts';
import type { Archive } from '../restore/archive.ts';
import { dbnameArg } from '../restore/restore-failure.ts';
import { DumpEntries } from './dump-entries.ts';

/** What stands for the database's name on both sides: the restored copy has a name of its own. */
const PLACEHOLDER = ':database';

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * Rewrites the database's name where it names the database (`CREATE DATABASE x`, `ALTER DATABASE x …`, `ON DATABASE
 * x`, `IN DATABASE x`), bare or double-quoted as pg_dump prints it, to the placeholder; never inside a string literal.
 * A setting or a comment that holds the name (`SET search_path TO 'shop', 'public'`, `IS 'see DATABASE shop'` in
 * database shop) is the same text in the restored copy, whose own name differs (QA: every restore of such a database
 * failed on its properties). `entryName` does the same for an entry's name, which may be the bare name itself.
 */
export function renamer(name: string): ((text: string) => string) & { entryName: (text: string) => string } {
  const quotedName = `"${name.replace(/"/g, '""')}"`;
  const forms = `(?:${escapeRegExp(quotedName)}|${escapeRegExp(name)}(?![\\w$]))`;
  const named = new RegExp(`(\\bDATABASE\\s+)${forms}`, 'g');
  // Split around single-quoted literals ('' inside one is a quote): only the parts outside them are SQL names.
  const rename = (text: string) =>
    text
      .split(/('(?:[^']|'')*')/)
      .map((part, i) => (i % 2 === 1 ? part : part.replace(named, `$1${PLACEHOLDER}`)))
      .join('');
  return Object.assign(rename, { entryName: (text: string) => (text === name || text === quotedName ? PLACEHOLDER : rename(text)) });
}

/** Flags both renderings share: owners and grants only where the restore kept them. */
export function renderFlags(owners: boolean): string[] {
  return ['--create', ...(owners ? [] : ['--no-owner', '--no-acl'])];
}

/** The archive as pg_dump wrote it: `pg_restore -f -`, read into entries (no server, no connection). */
export async function archiveEntries(archive: Archive, o: { database: string; owners: boolean }): Promise<DumpEntries> {
  const entries = new DumpEntries(renamer(o.database));
  const run = await archive.pgRestore([...renderFlags(o.owners), '--file=-'], { env: {}, stdoutTo: entries });
  if (!run.ok || run.canceled) throw new Error(`pg_restore could not read the archive back (${firstErrorLine(run.stderr) || run.exit})`);
  entries.end();
  await finished(entries);
  return entries;
}

/**
 * The restored copy as pg_dump writes it now, with the session the backup's pg_dump had (`timeZone`: PGTZ, so
 * timestamps print alike), read into entries. pg_dump's own snapshot and `synchronize_seqscans = off` give each
 * table's rows in the order they were loaded.
 */
export async function restoredEntries(
  url: string,
  database: string,
  o: { pgDump: string; owners: boolean; timeZone: string | undefined; signal?: AbortSignal | undefined },
): Promise<DumpEntries> {
  const entries = new DumpEntries(renamer(database));
  await withPgEnv(url, async (env) => {
    const child = yieldCpu(
      execa(o.pgDump, [...renderFlags(o.owners), '--no-password', dbnameArg(database)], {
        ...childOptions(o.signal),
        env: { ...env, ...(o.timeZone ? { PGTZ: o.timeZone } : {}) },
        extendEnv: false,
        stdin: 'ignore',
        stdout: 'pipe',
        stderr: 'pipe',
        buffer: false,
      }),
    );
    const stderr = collectOutput(child.stderr);
    child.stdout.pipe(entries);
    // A parser that gave up must not leave pg_dump blocked on a full pipe.
    const parsed = finished(entries).catch((err: unknown) => {
      child.kill('SIGTERM');
      throw err;
    });
    const [res] = await Promise.all([child, parsed]);
    if (res.failed) throw new Error(`pg_dump of the restored copy failed (${firstErrorLine(stderr.text()) || describeExit(res)})`);
  });
  return entries;
}
