import { defaultTarget } from '../../src/config.ts';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { execa } from 'execa';
import pg from 'pg';
import { createLogger } from '../../src/logger.ts';
import { countObjects, countRows, findPgTools, pgClientConfig, withPgEnv } from '../../src/postgres/index.ts';
import type { RunBackupOptions } from '../../src/postgres/backup/index.ts';
import { LocalStorage } from '../../src/storage/index.ts';
import type { ArtifactWriter, Storage } from '../../src/storage/types.ts';

export const silentLog = createLogger({ level: 'silent' });

export async function tempStorage(): Promise<{ storage: LocalStorage; root: string; cleanup(): Promise<void> }> {
  const root = await mkdtemp(join(tmpdir(), 'pgbb-store-'));
  return { storage: new LocalStorage(root, silentLog), root, cleanup: () => rm(root, { recursive: true, force: true }) };
}

let seq = 0;
/** Backup ids must be unique per target; tests make many per second. */
export function testBackupId(target: string): string {
  seq += 1;
  return `${target}-20260102T030405Z-${seq}`;
}

export function backupOptions(url: string, storage: Storage, extra: Partial<RunBackupOptions> = {}): RunBackupOptions {
  const target = extra.target ?? defaultTarget('app', url);
  return {
    target,
    storage,
    backupId: testBackupId(target.name),
    kind: 'manual',
    retentionClass: 'manual',
    retainUntil: null,
    requestedBy: { source: 'cli', userName: 'test' },
    jobId: null,
    label: null,
    compressionLevel: 1,
    // The tests of dumping itself run unencrypted, as a config with `encryption: none` would (test/crypto covers age).
    encryption: { recipients: [], optedOut: true },
    log: silentLog,
    ...extra,
  };
}

export async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client(pgClientConfig(url));
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

export async function countsOf(url: string) {
  return withClient(url, async (c) => ({ tables: await countRows(c), objects: await countObjects(c) }));
}

/** `zstd -dc artifact | pg_restore --no-owner --exit-on-error -d <db>`, credentials through the environment. */
export async function restoreInto(artifact: string, url: string): Promise<void> {
  const tools = await findPgTools({ serverMajor: 12 });
  await withPgEnv(url, async (env) => {
    await execa('zstd', ['-dc', artifact]).pipe(tools.pgRestore, ['--no-owner', '--exit-on-error', '--dbname', env.PGDATABASE ?? ''], {
      env,
      extendEnv: false,
    });
  });
}

/** Plain `pg_restore --list` of an artifact. */
export async function listArtifact(artifact: string): Promise<string> {
  const tools = await findPgTools({ serverMajor: 12 });
  // pg_restore --list stops reading after the TOC, so zstd would die of a broken pipe: decompress first.
  const { stdout: raw } = await execa('zstd', ['-dc', artifact], { encoding: 'buffer' });
  const { stdout } = await execa(tools.pgRestore, ['--list'], { input: raw });
  return stdout;
}

/** Processes whose parent is this test process: pid, argv and environment as /proc shows them to `ps`. */
export async function childProcesses(): Promise<Array<{ pid: number; cmdline: string; environ: string }>> {
  const out: Array<{ pid: number; cmdline: string; environ: string }> = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = await readFile(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid !== process.pid) continue;
      const cmdline = (await readFile(`/proc/${entry}/cmdline`, 'utf8')).replace(/\0/g, ' ');
      const environ = (await readFile(`/proc/${entry}/environ`, 'utf8').catch(() => '')).replace(/\0/g, '\n');
      out.push({ pid: Number(entry), cmdline, environ });
    } catch {
      // The process ended while we looked.
    }
  }
  return out;
}

/**
 * Whether a process runs `tool` itself: its program's file name, not a substring of its command line
 * (`pg_dumpall`, spawned beside pg_dump, contains "pg_dump"; with pids wrapping, either may come first in /proc).
 */
export const runsTool = (p: { cmdline: string }, tool: string): boolean => (p.cmdline.split(' ')[0] ?? '').split('/').pop() === tool;

/** Every command line on the machine (any user can read these, which is why a password must never be there). */
export async function allCmdlines(): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const c = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    if (c) out.push(c.replace(/\0/g, ' '));
  }
  return out;
}

/**
 * A Storage that behaves like `inner` but lets a test act when the database artifact receives its first bytes
 * (pg_dump is running then), act just before pg_dump starts, or make the artifact's writes fail.
 */
export function hookedStorage(
  inner: Storage,
  hooks: { onFirstChunk?: () => void | Promise<void>; beforeDump?: () => Promise<void>; failWith?: NodeJS.ErrnoException },
): Storage {
  return {
    describe: () => inner.describe(),
    beginBackup: (t, id) => inner.beginBackup(t, id),
    writeManifest: (m) => inner.writeManifest(m),
    discardUnfinished: (t, id) => inner.discardUnfinished(t, id),
    readManifest: (t, id) => inner.readManifest(t, id),
    list: (t) => inner.list(t),
    openArtifact: (t, id, f) => inner.openArtifact(t, id, f),
    deleteBackup: (t, id) => inner.deleteBackup(t, id),
    writeRecord: (r) => inner.writeRecord(r),
    listRecords: (k, t) => inner.listRecords(k, t),
    async createArtifactWriter(target, backupId, file): Promise<ArtifactWriter> {
      const isDb = file.startsWith('database');
      if (isDb && hooks.beforeDump) await hooks.beforeDump();
      const w = await inner.createArtifactWriter(target, backupId, file);
      if (!isDb) return w;
      let first = true;
      const stream = new Writable({
        write(chunk: Buffer, _enc, cb) {
          if (hooks.failWith) return cb(hooks.failWith);
          const go = () => (w.stream.write(chunk) ? cb() : w.stream.once('drain', () => cb()));
          if (!first) return go();
          first = false;
          Promise.resolve(hooks.onFirstChunk?.()).then(go, cb);
        },
        final(cb) {
          w.stream.end(() => cb());
        },
        destroy(err, cb) {
          w.stream.destroy();
          cb(err);
        },
      });
      return { stream, commit: () => w.commit(), abort: () => w.abort() };
    },
  };
}
