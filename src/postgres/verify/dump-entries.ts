import { createHash, type Hash } from 'node:crypto';
import { Writable } from 'node:stream';

/**
 * One archive entry as pg_dump renders it in plain SQL (`pg_restore -f -` of the archive, `pg_dump` of the
 * restored copy): the same code writes both sides, so equal entries mean equal objects and equal data.
 */
export interface DumpEntry {
  /** `TABLE public.Post`, `TABLE DATA public.Audit Log`, `LARGE OBJECT 16400`: what a verdict names. */
  key: string;
  type: string;
  /** sha256 of the entry's normalized text, or of a table's COPY rows exactly as written. */
  sha: string;
  /** The normalized lines of a definition (for the first differing line); null for data and very large text. */
  lines: string[] | null;
  /** A table's `COPY … (columns) FROM stdin;` line. */
  copy?: string;
  /**
   * A table's COPY had no rows (pg_dump writes the entry even for an empty table), or a definition holds no
   * statement: `SCHEMA public` with --no-owner, where pg_dump writes only "*not* creating schema".
   */
  empty?: boolean;
}

const HEADER = /^-- (Data for )?Name: (.*); Type: (.*?); Schema: (.*?); Owner: (.*)$/;
const COPY_START = /^COPY .* FROM stdin;$/;
const LO_OPEN = /^SELECT pg_catalog\.lo_open\('(\d+)'/;
/**
 * Session lines pg_dump writes where the previous entry left a different setting: not part of any object. Among
 * them `\encoding SQL_ASCII`, which pg_dump puts before `\connect` only when the database's name needs quoting
 * (`my-app`, `Weird DB`): the scratch copy's name never does, so the line is on one side only.
 */
const SESSION_LINE =
  /^(SET (default_tablespace|default_table_access_method|default_with_oids|statement_timeout|lock_timeout|idle_in_transaction_session_timeout|client_encoding|standard_conforming_strings|check_function_bodies|xmloption|client_min_messages|row_security) = .*;|SELECT pg_catalog\.set_config\('search_path', '', false\);|\\connect .*|\\encoding .*|\\(un)?restrict .*|BEGIN;|COMMIT;)$/;
/** Definitions longer than this are compared by hash alone. */
const KEEP_LINES = 4000;
/** Entries holding large objects' data (BLOBS up to PostgreSQL 16, LARGE OBJECTS after), and ours for each. */
const LO_DATA = new Set(['BLOBS', 'LARGE OBJECTS', 'LARGE OBJECT']);
const END_OF_COPY = Buffer.from('\n\\.\n');
const EMPTY_COPY = Buffer.from('\\.\n');

interface Open {
  key: string;
  type: string;
  /** The database's own entries (DATABASE, DATABASE PROPERTIES, its COMMENT…), where its name is renamed. */
  database: boolean;
  hash: Hash;
  lines: string[] | null;
  copy?: string;
  copied: number;
  /** Lines of text hashed (a definition with none holds nothing). */
  texts: number;
}

/**
 * A Writable that reads plain pg_dump output into entries. Definitions are read line by line (they are small);
 * a table's COPY rows are hashed in bulk, looking only for the `\.` that ends them, so a multi-gigabyte table
 * costs one pass of sha256 and no per-row work. `rename` rewrites the database's own entries (a restored copy
 * has a name of its own) so both sides name it alike; nothing else is renamed.
 */
export class DumpEntries extends Writable {
  readonly entries = new Map<string, DumpEntry>();
  private open: Open | null = null;
  private text = '';
  private inCopy = false;
  private hold: Buffer = Buffer.alloc(0);

  constructor(private readonly rename: ((text: string) => string) & { entryName?: (text: string) => string } = (t) => t) {
    super();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    try {
      this.take(chunk);
      done();
    } catch (err) {
      done(err as Error);
    }
  }

  override _final(done: (err?: Error | null) => void): void {
    if (this.text) this.line(this.text);
    this.text = '';
    this.close();
    done();
  }

  private take(chunk: Buffer): void {
    let rest: Buffer | null = chunk;
    while (rest && rest.length > 0) rest = this.inCopy ? this.copyBytes(rest) : this.textBytes(rest);
  }

  /** Lines until a COPY starts; returns the bytes after the COPY line. */
  private textBytes(buf: Buffer): Buffer | null {
    let start = 0;
    for (;;) {
      const nl = buf.indexOf(10, start);
      if (nl < 0) {
        this.text += buf.toString('utf8', start);
        return null;
      }
      const line = this.text + buf.toString('utf8', start, nl);
      this.text = '';
      start = nl + 1;
      if (this.line(line)) {
        this.inCopy = true;
        return buf.subarray(start);
      }
    }
  }

  /** Rows of the open COPY, hashed up to `\.`; returns what follows it. */
  private copyBytes(chunk: Buffer): Buffer | null {
    const open = this.open as Open;
    const buf = this.hold.length > 0 ? Buffer.concat([this.hold, chunk]) : chunk;
    this.hold = Buffer.alloc(0);
    if (open.copied === 0 && buf.length < EMPTY_COPY.length) {
      this.hold = Buffer.from(buf);
      return null;
    }
    if (open.copied === 0 && buf.subarray(0, EMPTY_COPY.length).equals(EMPTY_COPY)) return this.endCopy(buf.subarray(EMPTY_COPY.length));
    const end = buf.indexOf(END_OF_COPY);
    if (end >= 0) {
      this.copied(buf.subarray(0, end + 1));
      return this.endCopy(buf.subarray(end + END_OF_COPY.length));
    }
    // The terminator may straddle two chunks: keep back what could be its start.
    const keep = Math.min(END_OF_COPY.length - 1, buf.length);
    this.copied(buf.subarray(0, buf.length - keep));
    this.hold = Buffer.from(buf.subarray(buf.length - keep));
    return null;
  }

  private copied(b: Buffer): void {
    const open = this.open as Open;
    open.hash.update(b);
    open.copied += b.length;
  }

  private endCopy(after: Buffer): Buffer {
    this.inCopy = false;
    this.close();
    return after;
  }

  /** One line of text; true when it starts a table's rows. */
  private line(raw: string): boolean {
    const header = HEADER.exec(raw);
    if (header) {
      this.close();
      const [, , name, type, schema] = header as unknown as [string, string, string, string, string];
      const database = type.startsWith('DATABASE') || name.startsWith('DATABASE ');
      this.start(`${type} ${schema === '-' ? '' : `${schema}.`}${database ? (this.rename.entryName ?? this.rename)(name) : name}`, type, database);
      return false;
    }
    if (raw === '' || raw.startsWith('--') || SESSION_LINE.test(raw) || !this.open) return false;
    const open = this.open;
    if (open.type === 'TABLE DATA' && COPY_START.test(raw)) {
      open.copy = raw;
      return true;
    }
    // Each large object's data is an entry of its own, so a verdict names the one that differs.
    const lo = LO_DATA.has(open.type) ? LO_OPEN.exec(raw) : null;
    if (lo) {
      this.close();
      this.start(`LARGE OBJECT ${lo[1]}`, 'LARGE OBJECT');
      return false;
    }
    const text = open.database ? this.rename(raw) : raw;
    open.hash.update(text);
    open.hash.update('\n');
    open.texts++;
    if (open.lines) {
      open.lines.push(text);
      if (open.lines.length > KEEP_LINES) open.lines = null;
    }
    return false;
  }

  private start(key: string, type: string, database = false): void {
    let k = key;
    for (let n = 2; this.entries.has(k); n++) k = `${key} (${n})`;
    this.open = { key: k, type, database, hash: createHash('sha256'), lines: [], copied: 0, texts: 0 };
  }

  private close(): void {
    const o = this.open;
    if (!o) return;
    this.open = null;
    const entry: DumpEntry = { key: o.key, type: o.type, sha: o.hash.digest('hex'), lines: o.copy === undefined ? o.lines : null };
    if (o.copy !== undefined) {
      entry.copy = o.copy;
      entry.empty = o.copied === 0;
    } else if (o.texts === 0) entry.empty = true;
    // A BLOBS header whose objects became entries of their own holds nothing else.
    if (o.type !== 'LARGE OBJECT' && LO_DATA.has(o.type) && o.lines?.length === 0) return;
    this.entries.set(entry.key, entry);
  }
}
