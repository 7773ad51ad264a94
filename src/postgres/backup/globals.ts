import type { AgeEngine } from '../../crypto/age-cli.ts';
import type { Logger } from '../../logger.ts';
import type { Manifest } from '../../storage/index.ts';
import type { Storage } from '../../storage/index.ts';
import { dumpToArtifact, type DumpedArtifact } from './artifact.ts';
import { firstErrorLine } from '../failures.ts';
import { ToolPipeError } from './tool-chain.ts';

export const GLOBALS_FILE = 'globals.sql.zst';

export interface GlobalsOutcome {
  dumped: DumpedArtifact | null;
  globals: Manifest['globals'];
}

/**
 * Roles and tablespaces (`pg_dumpall --globals-only`, plain SQL: pg_dumpall has no custom format), so a restore
 * can recreate owners and grants. Role passwords need a superuser (they live in pg_authid); without one we
 * dump the rest and say so. Globals never fail a backup — only a cancel stops it.
 */
export async function dumpGlobals(o: {
  storage: Storage;
  target: string;
  backupId: string;
  superuser: boolean;
  database: string;
  pgDumpAll: string;
  zstd: string;
  level: number;
  /** Globals hold role password hashes: encrypted like the database when recipients are set. */
  encryption: { recipients: string[] } | null;
  ageEngine?: AgeEngine | undefined;
  env: Record<string, string>;
  signal?: AbortSignal | undefined;
  log: Logger;
}): Promise<GlobalsOutcome> {
  const attempts: Array<{ rolePasswords: boolean; args: string[] }> = [];
  // pg_dumpall connects to "postgres" (then template1) unless told otherwise; the target database is the one
  // the backup role can surely reach.
  const base = ['--globals-only', '--no-password', `--database=${o.database}`];
  if (o.superuser) attempts.push({ rolePasswords: true, args: base });
  attempts.push({ rolePasswords: false, args: [...base, '--no-role-passwords'] });
  let lastError = '';
  for (const attempt of attempts) {
    try {
      const dumped = await dumpToArtifact({
        storage: o.storage,
        target: o.target,
        backupId: o.backupId,
        file: GLOBALS_FILE,
        role: 'globals',
        format: 'plain',
        level: o.level,
        command: o.pgDumpAll,
        args: attempt.args,
        env: o.env,
        zstd: o.zstd,
        encryption: o.encryption,
        ageEngine: o.ageEngine,
        // Globals are kilobytes: counting them in Node is free and exact.
        rawCounting: 'node',
        signal: o.signal,
      });
      const note = attempt.rolePasswords
        ? null
        : o.superuser
          ? `role passwords skipped: pg_dumpall could not read them (${lastError})`
          : 'role passwords skipped: the backup role is not a superuser';
      return { dumped, globals: { included: true, rolePasswords: attempt.rolePasswords, note } };
    } catch (err) {
      if (o.signal?.aborted || (err instanceof ToolPipeError && err.stage === 'canceled')) throw err;
      lastError =
        err instanceof ToolPipeError && err.stage === 'tool'
          ? firstErrorLine(err.toolStderr).replace(/^[\w-]+:\s*(error:\s*)?/, '')
          : String(err instanceof Error ? err.message : err);
      o.log.warn(
        { err, rolePasswords: attempt.rolePasswords, stderr: err instanceof ToolPipeError ? err.toolStderr : undefined },
        'pg_dumpall --globals-only failed',
      );
    }
  }
  return { dumped: null, globals: { included: false, rolePasswords: false, note: `globals skipped: ${lastError || 'pg_dumpall failed'}` } };
}
