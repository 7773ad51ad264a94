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

/** The first line that differs, as "archive: … ; restored: …". */
function firstDifference(a: DumpEntry, b: DumpEntry): string {
  if (!a.lines || !b.lines) return 'its text differs';
  const n = Math.max(a.lines.length, b.lines.length);
  for (let i = 0; i < n; i++) if (a.lines[i] !== b.lines[i]) return `the backup has ${shown(a.lines[i])}, the restored copy ${shown(b.lines[i])}`;
  return 'its text differs';
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
    } else if (a.sha !== b.sha) {
      differ(kind, kind === 'lo' ? `${key}: content differs from the backup's` : `${key}: ${firstDifference(a, b)}`);
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
