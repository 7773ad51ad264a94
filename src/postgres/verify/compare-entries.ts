import type { DumpEntry } from './dump-entries.ts';

/** What the archive and the restored copy, both rendered by pg_dump, were found to hold. */
export interface EntryComparison {
  /** Tables whose rows were compared (a COPY in the archive, or an empty table on both sides). */
  tables: number;
  /** Definitions compared: every entry that is neither a table's rows nor a large object's data. */
  definitions: number;
  largeObjects: number;
  /** One sentence per difference, naming the object: the first few go in the verdict, the rest in the thread. */
  differences: string[];
  differing: { tables: number; definitions: number; largeObjects: number };
}

const shown = (line: string | undefined) => (line === undefined ? '(nothing)' : `\`${line.length > 140 ? `${line.slice(0, 140)}…` : line}\``);

/**
 * The first line that differs, pairing the right lines: a line one side has and the other lacks (the rest of the
 * entry alike) is said alone, not set against its neighbour.
 */
function firstDifference(a: DumpEntry, b: DumpEntry): string {
  if (!a.lines || !b.lines) return 'its text differs';
  const [x, y] = [a.lines, b.lines];
  const n = Math.max(x.length, y.length);
  for (let i = 0; i < n; i++) {
    if (x[i] === y[i]) continue;
    const [ax, by] = [x[i], y[i]];
    if (ax !== undefined && (by === undefined || (!y.includes(ax, i) && x.includes(by, i + 1)))) return lacks(ax);
    if (by !== undefined && (ax === undefined || (!x.includes(by, i) && y.includes(ax, i + 1)))) return adds(by);
    return `the backup has ${shown(ax)}, the restored copy ${shown(by)}`;
  }
  return 'its text differs';
}

const lacks = (line: string) => `the backup has ${shown(line)}, which the restored copy lacks`;
const adds = (line: string) => `the restored copy has ${shown(line)}, which the backup does not`;

/**
 * Entries whose statements may come in any order: the database's properties, whose per-role settings pg_dump prints
 * in catalog order (the roles' creation order, which a new server's need not share). Compared as sets of statements.
 */
const UNORDERED = new Set(['DATABASE PROPERTIES']);

/** An entry's statements (a statement's lines end at the one ending in `;`), sorted; null when it kept no lines. */
function statementSet(e: DumpEntry): string[] | null {
  if (!e.lines) return null;
  const out: string[] = [];
  let open = '';
  for (const l of e.lines) {
    open = open ? `${open}\n${l}` : l;
    if (l.endsWith(';')) {
      out.push(open);
      open = '';
    }
  }
  if (open) out.push(open);
  return out.sort();
}

/** What a statement sets, without the value: `ALTER ROLE app IN DATABASE :database SET work_mem`. */
const settingOf = (stmt: string) => /^(.*?)(?: TO | = )/s.exec(stmt)?.[1] ?? stmt;

/** The first statement one set has and the other lacks, paired with the other's value of the same setting. */
function setDifference(a: string[], b: string[]): string | null {
  const only = (x: string[], y: string[]) => {
    const left = [...y];
    return x.filter((s) => {
      const i = left.indexOf(s);
      if (i < 0) return true;
      left.splice(i, 1);
      return false;
    });
  };
  const [missing, extra] = [only(a, b), only(b, a)];
  const m = missing[0];
  if (m !== undefined) {
    const other = extra.find((e) => settingOf(e) === settingOf(m));
    return other === undefined ? lacks(m) : `the backup has ${shown(m)}, the restored copy ${shown(other)}`;
  }
  return extra[0] === undefined ? null : adds(extra[0]);
}

/** Whether two definitions are the same, and if not, how they differ. */
function definitionDifference(a: DumpEntry, b: DumpEntry): string | null {
  if (UNORDERED.has(a.type)) {
    const [x, y] = [statementSet(a), statementSet(b)];
    if (x && y) return setDifference(x, y);
  }
  return a.sha === b.sha ? null : firstDifference(a, b);
}

function kindOf(e: DumpEntry): 'rows' | 'lo' | 'definition' {
  return e.type === 'TABLE DATA' ? 'rows' : e.type === 'LARGE OBJECT' ? 'lo' : 'definition';
}

/** The name of a table whose rows an entry holds: `TABLE DATA public.Post` → `public.Post`. */
const tableOf = (key: string) => key.replace(/^TABLE DATA /, '');

/** An entry that holds nothing: a table without rows, or a definition without a statement. */
const holdsNothing = (e: DumpEntry) => e.empty === true && kindOf(e) !== 'lo';

/**
 * Compares the archive's entries (what pg_dump wrote in the backup) with the restored copy's (what pg_dump writes
 * of it now). An entry that holds nothing on one side and is absent on the other counts as equal: pg_dump writes no
 * rows for a table whose data it was told to leave out, and with --no-owner it writes an empty `SCHEMA public` for
 * a public schema that is not the database owner's (`ALTER SCHEMA public OWNER TO app_owner`), where the copy's,
 * the database owner's, gets no entry at all (QA: every restore test of such a database failed).
 */
export function compareEntries(archive: Map<string, DumpEntry>, restored: Map<string, DumpEntry>): EntryComparison {
  const differences: string[] = [];
  const counts = { rows: 0, lo: 0, definition: 0 };
  const differing = { rows: 0, lo: 0, definition: 0 };
  const differ = (kind: keyof typeof differing, sentence: string) => {
    differing[kind]++;
    differences.push(sentence);
  };
  for (const [key, a] of archive) {
    const kind = kindOf(a);
    counts[kind]++;
    const b = restored.get(key);
    if (!b) {
      if (holdsNothing(a)) continue;
      differ(kind, kind === 'rows' ? `table ${tableOf(key)}: its rows are missing from the restored copy` : `${key}: missing from the restored copy`);
      continue;
    }
    if (kind === 'rows') {
      if (a.copy !== b.copy) differ(kind, `table ${tableOf(key)}: columns differ: the backup has ${shown(a.copy)}, the restored copy ${shown(b.copy)}`);
      else if (a.sha !== b.sha) differ(kind, `table ${tableOf(key)}: content differs from the backup's`);
    } else if (kind === 'lo') {
      if (a.sha !== b.sha) differ(kind, `${key}: content differs from the backup's`);
    } else {
      const d = definitionDifference(a, b);
      if (d !== null) differ(kind, `${key}: ${d}`);
    }
  }
  for (const [key, b] of restored) {
    if (archive.has(key) || holdsNothing(b)) continue;
    differ(kindOf(b), `${key}: in the restored copy but not in the backup`);
  }
  return {
    tables: counts.rows,
    definitions: counts.definition,
    largeObjects: counts.lo,
    differences,
    differing: { tables: differing.rows, definitions: differing.definition, largeObjects: differing.lo },
  };
}
