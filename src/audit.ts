import { appendFile, mkdir, open } from 'node:fs/promises';
import { join } from 'node:path';
import { BotError } from './errors.ts';
import type { Logger } from './logger.ts';
import { errnoCode, storageError } from './storage/fs-util.ts';

/** One line of the audit trail: who asked what, what was decided, which job, and how it ended. */
export interface AuditEntry {
  at: string;
  kind: 'command' | 'action' | 'job';
  userId: string | null;
  userName: string | null;
  /** `/backup`, `/restore`, `restore_into_confirm`, the queue name for job results, or `scrub-repair` for a rewrite. */
  what: string;
  args: string;
  decision: 'allowed' | 'refused' | 'invalid' | 'n/a';
  role: string | null;
  jobId: string | null;
  result: string | null;
}

export interface AuditLog {
  /** Mirrors the entry to the log at once; resolves once its line is in the file, rejects when that write failed. */
  append(entry: Omit<AuditEntry, 'at'>): Promise<void>;
  /** Resolves once every append made before the call has been written (or has failed): for a clean stop. */
  flush(): Promise<void>;
  /** The last n entries, newest last. */
  tail(n: number): Promise<AuditEntry[]>;
}

/** One deletion (or failed one) of a retention run, by the scheduled job (its id) or the CLI (its user). */
export function retentionDeletion(args: string, result: string, by: { jobId: string | null; userName: string | null }): Omit<AuditEntry, 'at'> {
  return { kind: 'job', userId: null, userName: by.userName, what: 'retention', args, decision: 'n/a', role: null, jobId: by.jobId, result };
}

/** A damaged backup rewritten from another storage by the checksum scrub (storage/copy-scrub.ts): no deletion, its own line. */
export function scrubRepair(args: string, result: string, by: { jobId: string | null; userName: string | null }): Omit<AuditEntry, 'at'> {
  return { ...retentionDeletion(args, result, by), what: 'scrub-repair' };
}

const existsIsFine = (err: NodeJS.ErrnoException) => {
  if (err.code !== 'EEXIST') throw err;
};

/**
 * Append-only JSON lines in `<BACKUP_DIR>/_audit/audit.jsonl` (O_APPEND: concurrent writers interleave whole
 * lines), mirrored to the logs. Arguments are the command text, which never holds a secret (targets, ids, names).
 */
export function createAuditLog(dir: string, log: Logger, o: { createDir?: boolean } = {}): AuditLog {
  const folder = join(dir, '_audit');
  const file = join(folder, 'audit.jsonl');
  let ready: Promise<unknown> | undefined;
  // Group commit: lines that arrive while a write is in flight go out together in the next one, so fifty commands
  // at once cost two appends instead of fifty (each a trip through libuv's four-thread pool: open, write, close).
  // Every append still resolves only once its own line is in the file, and fails when that write fails.
  let batch: { lines: string[]; written: Promise<void> } | undefined;
  let writing: Promise<unknown> = Promise.resolve();
  const write = async (lines: string[]) => {
    // The CLI never creates BACKUP_DIR (o.createDir false): on a disk not mounted, that would put an audit trail on
    // the root filesystem, and make every later `list` there say "no backups yet" instead of "does not exist".
    ready ??= o.createDir === false ? mkdir(folder, { mode: 0o750 }).catch(existsIsFine) : mkdir(folder, { recursive: true, mode: 0o750 });
    try {
      await ready;
      await appendFile(file, lines.join(''), { flag: 'a', mode: 0o640 });
    } catch (err) {
      // Said for what it is (QA: the CLI printed "Something unexpected went wrong inside the bot" for a BACKUP_DIR that did not exist).
      if (errnoCode(err) === 'ENOENT' && o.createDir === false)
        throw new BotError('storage_failed', `${dir} does not exist (the trail is kept in its _audit directory)`, { cause: err });
      throw storageError(err, folder, 'append to audit.jsonl');
    }
  };
  return {
    async append(entry) {
      const line: AuditEntry = { at: new Date().toISOString(), ...entry };
      log.info({ audit: line }, 'audit');
      if (!batch) {
        const lines: string[] = [];
        // Taken when the write before it has finished; lines pushed until then go with it, in order.
        const written = writing.then(() => {
          batch = undefined;
          return write(lines);
        });
        batch = { lines, written };
        writing = written.catch(() => undefined);
      }
      batch.lines.push(`${JSON.stringify(line)}\n`);
      return batch.written;
    },
    async flush() {
      await writing;
    },
    async tail(n) {
      await writing; // what this process appended before the question is part of the answer
      let text = '';
      try {
        const fh = await open(file, 'r');
        try {
          const { size } = await fh.stat();
          // Read only the end: the trail grows forever and a chat reply needs a few lines.
          const length = Math.min(size, Math.max(64 * 1024, n * 1024));
          const buf = Buffer.alloc(length);
          await fh.read(buf, 0, length, size - length);
          text = buf.toString('utf8');
        } finally {
          await fh.close();
        }
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
        throw err;
      }
      const lines = text.split('\n').filter(Boolean);
      if (text.length > 0 && !text.startsWith('{')) lines.shift(); // the first line may be cut
      return lines.slice(-n).flatMap((l) => {
        try {
          return [JSON.parse(l) as AuditEntry];
        } catch {
          return [];
        }
      });
    },
  };
}
