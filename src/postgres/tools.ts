import { constants } from 'node:fs';
import { access, readdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { execa } from 'execa';
import { BotError } from '../errors.ts';
import { describeExit, firstErrorLine } from './failures.ts';

/** The PostgreSQL client programs of one install, all from the same directory so their versions agree. */
export interface PgTools {
  pgDump: string;
  pgDumpAll: string;
  pgRestore: string;
  psql: string;
  /** `pg_dump --version` output, e.g. `pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)`. */
  version: string;
  major: number;
}

const DEBIAN_ROOT = '/usr/lib/postgresql';

/** Whether a path is a file this process may execute. */
export async function isExecutable(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * A PostgreSQL program that is not among PgTools (pg_amcheck, pg_receivewal, pg_basebackup…): beside the pg_dump
 * in use, else in the Debian layout of that major; null when neither has it.
 */
export async function findPgProgram(name: string, pgDump: string, major: number): Promise<string | null> {
  for (const dir of [dirname(pgDump), join(DEBIAN_ROOT, String(major), 'bin')]) {
    const bin = join(dir, name);
    if (await isExecutable(bin)) return bin;
  }
  return null;
}

/** Major version from `pg_dump (PostgreSQL) 15.20 …` or `… 9.6.24`; pre-10 majors count as their first digit. */
export function parsePgDumpVersion(output: string): number | null {
  const m = /\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?/.exec(output);
  if (!m) return null;
  return Number(m[1]);
}

async function probe(dir: string): Promise<PgTools | null> {
  const pgDump = join(dir, 'pg_dump');
  if (!(await isExecutable(pgDump))) return null;
  const result = await execa(pgDump, ['--version'], { reject: false, stdin: 'ignore', timeout: 10_000 });
  const version = String(result.stdout ?? '').trim();
  const major = parsePgDumpVersion(version);
  if (result.failed || major === null) return null;
  return {
    pgDump,
    pgDumpAll: join(dir, 'pg_dumpall'),
    pgRestore: join(dir, 'pg_restore'),
    psql: join(dir, 'psql'),
    version,
    major,
  };
}

/** Candidate directories, best first: configured dir, the server's own major, newer majors, then PATH. */
async function candidates(serverMajor: number, pgBinDir: string | undefined, path: string, root: string): Promise<string[]> {
  const dirs: string[] = [];
  if (pgBinDir) dirs.push(pgBinDir);
  const majors = (await readdir(root).catch(() => [] as string[]))
    .filter((m) => /^\d+$/.test(m))
    .map(Number)
    .sort((a, b) => a - b);
  // The server's own major first (exact match is safest), then the newest newer one, then older ones last
  // (probed only to name the version in the mismatch message).
  const ordered = [
    ...majors.filter((m) => m === serverMajor),
    ...majors.filter((m) => m > serverMajor).reverse(),
    ...majors.filter((m) => m < serverMajor).reverse(),
  ];
  for (const m of ordered) dirs.push(join(root, String(m), 'bin'));
  for (const d of path.split(':')) if (d) dirs.push(d);
  return [...new Set(dirs)];
}

/**
 * Finds pg_dump & co. able to dump a server of `serverMajor`: pg_dump refuses servers newer than itself, so an
 * older one is never used. A configured `pgBinDir` wins when it qualifies.
 */
export async function findPgTools(options: {
  serverMajor: number;
  pgBinDir?: string | undefined;
  /** Search path, default $PATH; and the Debian layout's root, default /usr/lib/postgresql (tests change both). */
  path?: string;
  debianRoot?: string;
}): Promise<PgTools> {
  const { serverMajor } = options;
  let newestTooOld: PgTools | null = null;
  const path = options.path ?? process.env.PATH ?? '';
  for (const dir of await candidates(serverMajor, options.pgBinDir, path, options.debianRoot ?? DEBIAN_ROOT)) {
    const tools = await probe(dir);
    if (!tools) continue;
    if (tools.major >= serverMajor) return tools;
    if (!newestTooOld || tools.major > newestTooOld.major) newestTooOld = tools;
  }
  if (newestTooOld) {
    throw new BotError(
      'pg_version_mismatch',
      `The database runs PostgreSQL ${serverMajor} but the newest pg_dump here is version ${newestTooOld.major}, which cannot dump it: install postgresql-client-${serverMajor} (apt.postgresql.org) or point PG_BIN_DIR at a pg_dump ${serverMajor} or newer.`,
    );
  }
  throw new BotError(
    'pg_tool_missing',
    `pg_dump is not installed on the backup host: install postgresql-client-${serverMajor} (Debian/Ubuntu, from apt.postgresql.org) or set PG_BIN_DIR.`,
  );
}

/**
 * The zstd CLI (Debian package zstd), which compresses with all cores and streams. Its failure is one sentence, with
 * no detail beside it: the CLI prints a BotError's detail after its sentence, and execa's "Command failed with
 * ENOENT" lines said nothing the sentence had not (QA).
 */
export async function findZstd(path = 'zstd'): Promise<string> {
  const result = await execa(path, ['--version'], { reject: false, stdin: 'ignore', timeout: 10_000 });
  if (result.failed) {
    if ((result as { code?: string }).code === 'ENOENT') {
      throw new BotError('pg_tool_missing', 'The zstd compressor is not installed on the backup host: `apt-get install zstd` (Debian package zstd).');
    }
    const said = firstErrorLine(String(result.stderr ?? '')) || describeExit(result);
    throw new BotError(
      'pg_tool_missing',
      `The zstd compressor on the backup host does not run (\`${path} --version\`: ${said}): reinstall it (\`apt-get install --reinstall zstd\`).`,
    );
  }
  return path;
}
