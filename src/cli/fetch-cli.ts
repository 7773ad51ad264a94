import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { lstat, open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import type { Writable } from 'node:stream';
import { createAuditLog } from '../audit.ts';
import type { Config } from '../config.ts';
import { unwrapWord } from '../commands/typed-ids.ts';
import { BotError, toUserMessage } from '../errors.ts';
import { formatBytes, formatTime } from '../format.ts';
import type { Logger } from '../logger.ts';
import { findZstd } from '../postgres/index.ts';
import { fetchArtifact, identityFor } from '../postgres/restore/index.ts';
import { findBackup, fsyncDir, type Manifest, type Storage } from '../storage/index.ts';
import type { CliIo } from './backup-cli.ts';
import { SEE_LIST } from '../commands/restore-text.ts';

export const FETCH_USAGE = 'usage: pg-backup-bot fetch <backup-id> [--globals] [-o FILE | -o -]';

interface FetchArgs {
  backupId: string;
  globals: boolean;
  /** A path, '-' for stdout, or null for `<backup-id>.pgdump` (`-globals.sql`) in the current directory. */
  output: string | null;
}

export function parseFetchArgs(args: string[]): FetchArgs | string {
  let backupId: string | undefined;
  let globals = false;
  let output: string | null = null;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? '';
    if (arg === '--globals') globals = true;
    else if (arg === '-o' || arg === '--output') {
      const next = args[++i];
      if (next === undefined || next === '') return `${arg} needs a file name, or - for standard output`;
      output = next;
    } else if (arg.startsWith('--output=')) output = arg.slice('--output='.length) || null;
    else if (arg.startsWith('-') && arg !== '-') return `unknown option ${arg}`;
    else if (backupId === undefined)
      backupId = unwrapWord(arg); // backticks of a copied id (as `restore` takes it)
    else return `one backup id only (got ${backupId} and ${arg})`;
  }
  if (backupId === undefined) return 'name the backup: pg-backup-bot list shows their ids';
  return { backupId, globals, output };
}

/**
 * `pg-backup-bot fetch <backup-id>`: the plain pg_dump archive (or, with --globals, the roles SQL) of a stored
 * backup, decrypted, decompressed and checked against the manifest on the way, for a restore by hand. A file is
 * written as `<name>.partial` and renamed only once every check passed; on standard output a failure is said on
 * stderr and by the exit code (1), since what was written cannot be taken back.
 */
export async function cliFetch(
  args: string[],
  deps: { config: Config; storage: Storage; log: Logger; io: CliIo; signal?: AbortSignal; stdout?: Writable & { isTTY?: boolean } },
): Promise<number> {
  const { io } = deps;
  const parsed = parseFetchArgs(args);
  if (typeof parsed === 'string') {
    io.err(`${parsed}\n${FETCH_USAGE}`);
    return 2;
  }
  const stdout = deps.stdout ?? process.stdout;
  if (parsed.output === '-' && stdout.isTTY) {
    io.err('Standard output is a terminal: redirect it (> FILE, | pg_restore …) or name a file with -o FILE.');
    return 2;
  }
  const audit = createAuditLog(deps.config.backupDir, deps.log.child({ component: 'audit' }), { createDir: false });
  let result: string;
  let code: number;
  try {
    const manifest = await findBackup(deps.storage, parsed.backupId, SEE_LIST.cli);
    const role = parsed.globals ? 'globals' : 'database';
    const fetched = await fetchTo(parsed, manifest, deps, stdout);
    result = `fetched ${role} of ${manifest.backupId} to ${fetched.where} (${fetched.bytes} bytes, sha256 checked)`;
    io.err(
      `Fetched the ${role === 'globals' ? 'globals (roles SQL)' : 'pg_dump archive'} of ${manifest.backupId} (${manifest.target}, taken ${formatTime(new Date(manifest.startedAt))}) to ${fetched.where}: ${formatBytes(fetched.bytes)}, sha256 and sizes match the manifest.`,
    );
    if (parsed.output !== '-') io.err(restoreHint(role, fetched.where));
    code = 0;
  } catch (err) {
    result = `failed: ${toUserMessage(err)}`;
    io.err(`Fetch failed: ${toUserMessage(err)}`);
    deps.log.debug({ err }, 'fetch failed');
    code = 1;
  }
  await audit
    .append({
      kind: 'command',
      userId: null,
      userName: process.env.USER ?? process.env.LOGNAME ?? null,
      what: 'cli fetch',
      args: args.join(' ').slice(0, 500),
      decision: 'allowed',
      role: null,
      jobId: null,
      result: result.slice(0, 300),
    })
    .catch((err: unknown) => io.err(`(not recorded in the audit trail: ${toUserMessage(err)})`));
  return code;
}

async function fetchTo(
  parsed: FetchArgs,
  manifest: Manifest,
  deps: { config: Config; storage: Storage; signal?: AbortSignal },
  stdout: Writable,
): Promise<{ where: string; bytes: number }> {
  const options = {
    manifest,
    storage: deps.storage,
    role: parsed.globals ? ('globals' as const) : ('database' as const),
    zstd: await findZstd(),
    identity: await identityFor(manifest, deps.config.encryption.identityFile),
    signal: deps.signal,
  };
  if (parsed.output === '-') {
    const { bytes } = await fetchArtifact({ ...options, out: stdout });
    return { where: 'standard output', bytes };
  }
  const path = resolve(parsed.output ?? `${manifest.backupId}${parsed.globals ? '-globals.sql' : '.pgdump'}`);
  const partial = resolve(dirname(path), `.${basename(path)}.partial`);
  // wx: never overwrite a file someone already has (an earlier fetch, a different backup), nor follow a planted link.
  const exists = await lstat(path).then(
    () => true,
    () => false,
  );
  if (exists) throw new BotError('bad_request', `${path} already exists; name another file with -o FILE or remove it first.`);
  const out = createWriteStream(partial, { flags: 'wx', mode: 0o600 });
  try {
    await once(out, 'open').catch((err: unknown) => {
      throw new BotError('storage_failed', `Could not create ${partial}: ${(err as Error).message}`, { cause: err });
    });
    const { bytes } = await fetchArtifact({ ...options, out });
    await new Promise<void>((ok, fail) => out.end((err?: Error | null) => (err ? fail(err) : ok())));
    if (!out.closed) await once(out, 'close');
    // fsync is of the file, whichever descriptor asks: the bytes are on disk before the name says they are whole.
    const handle = await open(partial, 'r');
    await handle.sync().finally(() => handle.close());
    await rename(partial, path);
    await fsyncDir(dirname(path));
    return { where: path, bytes };
  } catch (err) {
    out.destroy();
    await unlink(partial).catch(() => undefined);
    throw err;
  }
}

function restoreHint(role: 'database' | 'globals', path: string): string {
  return role === 'globals'
    ? `Apply it on the new server before the database: psql -d postgres -f ${path} (roles that exist make errors you can read past).`
    : `Restore it by hand: pg_restore --create --exit-on-error -d postgres ${path} (the database's name, owner, collation and settings come from the archive), or into an existing empty database: pg_restore -d <db> ${path}.`;
}
