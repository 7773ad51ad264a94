import { chmod, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findPgTools } from '../../../src/postgres/index.ts';
import { BotError } from '../../../src/errors.ts';
import { withClient } from '../../support/postgres-helpers.ts';

/**
 * A PG_BIN_DIR whose pg_restore writes its arguments to a log before running the real one, so a test can see
 * whether pg_restore ran at all and with which options. The other tools are the real ones.
 */
export async function loggingPgBin(): Promise<{ binDir: string; calls(): Promise<string[][]>; cleanup(): Promise<void> }> {
  const real = await findPgTools({ serverMajor: 12 });
  const binDir = await mkdtemp(join(tmpdir(), 'pgbb-bin-'));
  const log = join(binDir, 'calls.log');
  await writeFile(log, '');
  for (const [name, path] of [
    ['pg_dump', real.pgDump],
    ['pg_dumpall', real.pgDumpAll],
    ['psql', real.psql],
  ] as const) {
    await symlink(path, join(binDir, name));
  }
  // One line per call, arguments separated by a unit separator (they may contain spaces).
  const script = `#!/bin/sh\nprintf '%s\\037' "$@" >> '${log}'\nprintf '\\n' >> '${log}'\nexec '${real.pgRestore}' "$@"\n`;
  await writeFile(join(binDir, 'pg_restore'), script);
  await chmod(join(binDir, 'pg_restore'), 0o755);
  return {
    binDir,
    async calls() {
      const text = await readFile(log, 'utf8');
      return text
        .split('\n')
        .filter(Boolean)
        .map((l) => l.split('\x1f').filter(Boolean));
    },
    cleanup: () => rm(binDir, { recursive: true, force: true }),
  };
}

export async function databaseExists(serverUrl: string, name: string): Promise<boolean> {
  return withClient(serverUrl, async (c) => ((await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [name])).rowCount ?? 0) > 0);
}

export async function queryRows<T extends Record<string, unknown>>(url: string, sql: string): Promise<T[]> {
  return withClient(url, async (c) => (await c.query<T>(sql)).rows);
}

export async function failure(p: Promise<unknown>): Promise<BotError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof BotError) return err;
    throw err;
  }
  throw new Error('expected a BotError, but the call succeeded');
}
