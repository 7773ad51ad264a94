import { BotError } from '../../errors.ts';
import { rowlessSources } from './matview-sources.ts';
import type { TocEntry } from './toc.ts';
import { asOption } from '../../restore-scope.ts';
import { findSchema, findTables, otherCase } from './selection-names.ts';
export { parseTableRef } from './selection-names.ts';

/**
 * Which archive entries a selective restore runs, as a `pg_restore -L` list. Why not `-n`/`-t`: pg_restore 15
 * matches `-t` on the bare table name, combines every `-n` with every `-t` (asking for a.x and b.y also restores
 * a.y and b.x), and `-t` restores only the table and its data — no indexes, constraints, triggers, defaults or
 * partitions. The list is exact: the named tables, their partitions, their data, and the entries that belong to
 * them (indexes, constraints, triggers, defaults, owned sequences). Then by mode:
 * - 'new' (an empty database): also what they depend on (schemas, types, domains, functions, sequences, a
 *   partitioned parent's definition) and every extension (pg_dump records no dependency on extension members,
 *   e.g. an exclusion constraint's btree_gist operator class). A foreign key to a table not restored is left
 *   out, with a note.
 * - 'existing': only the tables' own entries, dropped and recreated (see replace-in-place.ts); shared objects
 *   (types, functions, extensions) stay as they are. Foreign keys of other tables that point at a restored table
 *   are included, so they are dropped first and re-added (and re-checked) after the data is back.
 */

export interface TableRef {
  schema: string;
  table: string;
}

export interface SelectionPlan {
  /** Dump ids to restore, in archive order. */
  ids: number[];
  /** The `-L` file's contents. */
  listFile: string;
  /** The `-L` file whose `--clean` statements empty the way for a restore into an existing database. */
  dropListFile: string;
  /** Tables whose data is restored (leaf tables and partitions; a partitioned parent has no rows of its own). */
  dataTables: TableRef[];
  /** Things deliberately left out, as sentences. */
  notes: string[];
  /** Tables, views and materialized views the plan (re)creates, as `schema.name`. */
  relations: string[];
}

/** Entries that belong to the table(s) they depend on. */
const OWNED = new Set([
  'TABLE',
  'TABLE ATTACH',
  'SEQUENCE',
  'DEFAULT',
  'CONSTRAINT',
  'CHECK CONSTRAINT',
  'FK CONSTRAINT',
  'INDEX',
  'INDEX ATTACH',
  'TRIGGER',
  'RULE',
  'POLICY',
  'ROW SECURITY',
  'STATISTICS',
]);
/** Entries that go with the object(s) they depend on once all of those are restored. */
const ATTACHED = new Set(['SEQUENCE OWNED BY', 'COMMENT', 'SECURITY LABEL', 'ACL']);
/** Never pulled in as a dependency: data comes only with the tables asked for. */
const DATA = new Set(['TABLE DATA', 'SEQUENCE SET', 'MATERIALIZED VIEW DATA', 'BLOBS', 'BLOB', 'LARGE OBJECT']);

type Mode = 'new' | 'existing';

/** The tables asked for (`selected`) and every entry included so far; a step returns new sets, never changes its input's. */
interface Picked {
  selected: Set<number>;
  included: Set<number>;
}

export function planSelection(entries: TocEntry[], request: { tables: string[]; schemas: string[]; mode: Mode }): SelectionPlan {
  const byId = new Map(entries.map((e) => [e.id, e]));
  const picked = withoutDanglingKeys(withDependencies(entries, byId, requested(entries, request), request.mode), entries, byId, request.mode);
  const ordered = entries.filter((e) => picked.included.has(e.id));
  const notes = [...leftOutForeignKeys(entries, byId, picked), ...leftOutOnPurpose(entries, ordered, picked.selected)];
  const dataTables = ordered
    .filter((e) => e.desc === 'TABLE DATA')
    .map((e) => byId.get(e.deps[0] ?? -1))
    .filter((t): t is TocEntry => t !== undefined)
    .map((t) => ({ schema: t.schema, table: t.tag }));
  // What to drop before restoring into an existing database: tables (their indexes, constraints, triggers,
  // defaults and owned sequences go with them: dropping those one by one is what fails on partitions), the
  // foreign keys that point at them, and a selected schema's other objects.
  const isTable = (id: number) => byId.get(id)?.desc === 'TABLE';
  const dropped = ordered.filter(
    (e) => !DATA.has(e.desc) && !ATTACHED.has(e.desc) && !(OWNED.has(e.desc) && e.desc !== 'TABLE' && e.desc !== 'FK CONSTRAINT' && e.deps.some(isTable)),
  );
  const list = (es: TocEntry[]) => `${es.map((e) => e.line).join('\n')}\n`;
  const relations = ordered.filter((e) => /^(TABLE|VIEW|MATERIALIZED VIEW)$/.test(e.desc)).map((e) => `${e.schema}.${e.tag}`);
  return { ids: ordered.map((e) => e.id), listFile: list(ordered), dropListFile: list(dropped), dataTables, notes, relations };
}

/** " (a quoted name is exact: did you mean --table='"Audit Log"'?)" for tables a quoted name misses by case; '' for none. */
const didYouMean = (near: TocEntry[]) =>
  near.length === 0 ? '' : ` (a quoted name is exact: did you mean ${near.map((e) => `--table='${asOption(e.schema)}.${asOption(e.tag)}'`).join(' or ')}?)`;

/** The named tables and every entry of the named schemas; any name the backup lacks refuses the whole request. */
function requested(entries: TocEntry[], request: { tables: string[]; schemas: string[] }): Picked {
  if (request.tables.length === 0 && request.schemas.length === 0) {
    throw new BotError('bad_request', 'Name at least one table or schema to restore.');
  }
  const selected = new Set<number>();
  const included = new Set<number>();
  const unknown: string[] = [];
  for (const t of request.tables) {
    const found = findTables(entries, t);
    // Named as typed: a name that already holds quotes (public."Nope") is not wrapped in more of them.
    // A view or materialized view named as a table: said as what it is, with the way to have it (QA: "no table").
    const view = found.length === 0 ? findTables(entries, t, ['VIEW', 'MATERIALIZED VIEW'])[0] : undefined;
    if (view)
      unknown.push(
        `a ${view.desc.toLowerCase()} ${asOption(view.schema)}.${asOption(view.tag)}, not a table: restore its schema (--schema=${asOption(view.schema)}), or the tables it reads`,
      );
    else if (found.length === 0) unknown.push(`no table ${t.includes('"') ? t : `"${t}"`}${didYouMean(otherCase(entries, t))}`);
    else if (found.length > 1 && new Set(found.map((e) => e.tag)).size === 1)
      unknown.push(`"${t}" is in several schemas (${found.map((e) => e.schema).join(', ')}): write schema.table`);
    else if (found.length > 1)
      unknown.push(
        `"${t}" matches ${found.map((e) => `${asOption(e.schema)}.${asOption(e.tag)}`).join(' and ')}: name the one you mean as SQL does (quoted: "Name")`,
      );
    else selected.add((found[0] as TocEntry).id);
  }
  for (const s of request.schemas) {
    const named = findSchema(entries, s);
    if (named.length === 0) unknown.push(`no schema ${s.includes('"') ? s : `"${s}"`}`);
    else if (named.length > 1) unknown.push(`"${s}" matches schemas ${named.map(asOption).join(' and ')}: name the one you mean as SQL does (quoted: "Name")`);
    const schema = named.length === 1 ? named[0] : undefined;
    for (const e of schema === undefined ? [] : entries.filter((x) => x.schema === schema || (x.desc === 'SCHEMA' && x.tag === schema))) {
      included.add(e.id);
      if (e.desc === 'TABLE') selected.add(e.id);
    }
  }
  if (unknown.length > 0) throw new BotError('bad_request', `The backup has ${unknown.join('; ')}. Nothing was restored.`);
  for (const id of selected) included.add(id);
  return { selected, included };
}

/**
 * Adds what belongs to the selection (data, owned and attached entries; in a new database also every extension
 * and whatever the included entries depend on) until a pass adds nothing: one addition can make another belong.
 */
function withDependencies(entries: TocEntry[], byId: Map<number, TocEntry>, from: Picked, mode: Mode): Picked {
  const selected = new Set(from.selected);
  const included = new Set(from.included);
  const isTable = (id: number) => byId.get(id)?.desc === 'TABLE';
  for (let changed = true; changed; ) {
    changed = false;
    const add = (e: TocEntry) => {
      included.add(e.id);
      if (e.desc === 'TABLE') selected.add(e.id);
      changed = true;
    };
    for (const e of entries) {
      if (included.has(e.id)) continue;
      if (e.desc === 'TABLE DATA') {
        if (e.deps.some((d) => selected.has(d))) add(e);
      } else if (e.desc === 'SEQUENCE SET' || e.desc === 'MATERIALIZED VIEW DATA') {
        // With their sequence or materialized view (parseToc gives a SEQUENCE SET its sequence as dependency).
        if (e.deps.some((d) => included.has(d) && /^(SEQUENCE|MATERIALIZED VIEW)$/.test(byId.get(d)?.desc ?? ''))) add(e);
      } else if (OWNED.has(e.desc)) {
        const tables = e.deps.filter(isTable);
        if (!tables.some((d) => selected.has(d))) continue;
        // Into a new database a foreign key can only point at a table that is there, with its rows: a table pulled
        // in only because a view needs it comes without them, and the key would fail on the first row.
        if (mode === 'existing' || tables.every((d) => (e.desc === 'FK CONSTRAINT' ? selected.has(d) : included.has(d)))) add(e);
      } else if (ATTACHED.has(e.desc)) {
        if (e.deps.length > 0 && e.deps.every((d) => included.has(d))) add(e);
      } else if (mode === 'new' && e.desc === 'EXTENSION') {
        add(e);
      }
    }
    if (mode === 'new') {
      for (const id of [...included]) {
        for (const d of byId.get(id)?.deps ?? []) {
          const dep = byId.get(d);
          if (dep && !included.has(d) && !DATA.has(dep.desc)) {
            included.add(d);
            changed = true;
          }
        }
      }
    }
  }
  return { selected, included };
}

/**
 * What a selective restore never brings back, said plainly rather than reported as success: large objects (they
 * belong to no table; a row's oid pointing at one would dangle), and materialized views, which pg_restore fills by
 * refreshing them from the restored tables, so a view that was stale when dumped comes back with other contents.
 */
function leftOutOnPurpose(entries: TocEntry[], ordered: TocEntry[], selected: Set<number>): string[] {
  const notes: string[] = [];
  for (const t of ordered.filter((e) => e.desc === 'TABLE' && !selected.has(e.id))) {
    const needers = ordered.filter((e) => e.deps.includes(t.id) && !OWNED.has(e.desc) && !ATTACHED.has(e.desc) && !DATA.has(e.desc));
    const why = needers.length > 0 ? `: ${needers.map((e) => `${e.schema}.${e.tag}`).join(', ')} need${needers.length === 1 ? 's' : ''} it` : '';
    notes.push(`${t.schema}.${t.tag} was created without its rows${why}; add --table=${asOption(t.schema)}.${asOption(t.tag)} to restore them too`);
  }
  const blobs = entries.filter((e) => e.desc === 'BLOB' || e.desc === 'LARGE OBJECT' || e.desc === 'BLOBS').length;
  if (blobs > 0) notes.push('large objects are not in a selective restore: restore the whole database (no --table or --schema) to get them back');
  const refreshed = ordered.filter((e) => e.desc === 'MATERIALIZED VIEW DATA').map((e) => `${e.schema}.${e.tag}`);
  if (refreshed.length > 0) notes.push(`materialized views refreshed from the restored tables, not restored as dumped: ${refreshed.join(', ')}`);
  for (const [view, tables] of rowlessSources(entries, ordered, selected))
    notes.push(`${view} reads ${tables.join(', ')}, created without rows here: it holds none of their data (add --table for each to restore them too)`);
  return notes;
}

/**
 * Into a new database, a foreign key that points at a table restored without its rows (pulled in because a view
 * needs it, or named with its schema) would fail on the first row: it is left out, and leftOutForeignKeys says so.
 */
function withoutDanglingKeys(p: Picked, entries: TocEntry[], byId: Map<number, TocEntry>, mode: Mode): Picked {
  if (mode !== 'new') return p;
  const included = new Set(p.included);
  for (const e of entries) {
    if (e.desc === 'FK CONSTRAINT' && included.has(e.id) && e.deps.some((d) => byId.get(d)?.desc === 'TABLE' && !p.selected.has(d))) included.delete(e.id);
  }
  return { selected: p.selected, included };
}

/** A sentence for each foreign key of a restored table that was left out because its target table was. */
function leftOutForeignKeys(entries: TocEntry[], byId: Map<number, TocEntry>, { selected, included }: Picked): string[] {
  const notes: string[] = [];
  for (const e of entries) {
    if (e.desc === 'FK CONSTRAINT' && !included.has(e.id) && e.deps.some((d) => selected.has(d))) {
      // The tag is "<table> <constraint>"; either may contain spaces, so the owning table is found among the deps.
      const owner = e.deps
        .map((d) => byId.get(d))
        .filter((t): t is TocEntry => t?.desc === 'TABLE' && e.tag.startsWith(`${t.tag} `))
        .sort((a, b) => b.tag.length - a.tag.length)[0];
      // Only a restored table's own key is news; a key of a table left out naturally goes with it.
      if (owner && selected.has(owner.id)) {
        notes.push(
          `foreign key ${e.tag.slice(owner.tag.length + 1)} of ${owner.schema}.${owner.tag} was not restored: it refers to a table that was not restored`,
        );
      }
    }
  }
  return notes;
}
