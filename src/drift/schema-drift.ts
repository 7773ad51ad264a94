import { TABLE_PARTS, type Definitions, type Manifest, type TableDefinition, type TablePart } from '../storage/index.ts';

/** What changed in the definitions between two backups (storage/manifest-definitions.ts), by name. */

export type SchemaObjectKind = 'table' | 'column' | 'index' | 'constraint' | 'policy' | 'trigger' | 'function' | 'view';

export interface SchemaChange {
  kind: SchemaObjectKind;
  /** `shop.orders`; a column `shop.orders.note`; an index, constraint, policy or trigger `name on shop.orders`. */
  name: string;
  change: 'added' | 'dropped' | 'changed';
}

export type SchemaDrift = { comparable: true; changes: SchemaChange[] } | { comparable: false; reason: string };

const PART_KIND: Record<TablePart, SchemaObjectKind> = {
  columns: 'column',
  indexes: 'index',
  constraints: 'constraint',
  policies: 'policy',
  triggers: 'trigger',
};
const ORDER: SchemaObjectKind[] = ['table', 'column', 'index', 'constraint', 'policy', 'trigger', 'function', 'view'];

const tableKey = (t: TableDefinition) => JSON.stringify([t.schema, t.name]);
const tableName = (t: TableDefinition) => `${t.schema}.${t.name}`;

/** Names in either record, each with what happened to it. */
function diffNamed(before: Record<string, string>, after: Record<string, string>, out: (name: string, change: SchemaChange['change']) => void): void {
  for (const [name, hash] of Object.entries(before)) {
    if (!(name in after)) out(name, 'dropped');
    else if (after[name] !== hash) out(name, 'changed');
  }
  for (const name of Object.keys(after)) if (!(name in before)) out(name, 'added');
}

/**
 * Every object added, dropped or changed. A table added or dropped is one change: its columns, indexes and the rest
 * came or went with it and are not listed again.
 */
export function compareDefinitions(before: Definitions, after: Definitions): SchemaChange[] {
  const changes: SchemaChange[] = [];
  const now = new Map(after.tables.map((t) => [tableKey(t), t]));
  for (const b of before.tables) {
    const a = now.get(tableKey(b));
    now.delete(tableKey(b));
    if (!a) {
      changes.push({ kind: 'table', name: tableName(b), change: 'dropped' });
      continue;
    }
    if (a.hash !== b.hash) changes.push({ kind: 'table', name: tableName(b), change: 'changed' });
    for (const part of TABLE_PARTS) {
      const kind = PART_KIND[part];
      diffNamed(b[part], a[part], (name, change) =>
        changes.push({ kind, name: kind === 'column' ? `${tableName(b)}.${name}` : `${name} on ${tableName(b)}`, change }),
      );
    }
  }
  for (const a of now.values()) changes.push({ kind: 'table', name: tableName(a), change: 'added' });
  diffNamed(before.functions, after.functions, (name, change) => changes.push({ kind: 'function', name, change }));
  diffNamed(before.views, after.views, (name, change) => changes.push({ kind: 'view', name, change }));
  return changes.sort((x, y) => ORDER.indexOf(x.kind) - ORDER.indexOf(y.kind) || (x.name < y.name ? -1 : x.name > y.name ? 1 : 0));
}

/** The schema drift between two backups' manifests, or why it cannot be told. */
export function schemaDrift(before: Manifest, after: Manifest, incomparable: string | null): SchemaDrift {
  if (incomparable) return { comparable: false, reason: incomparable };
  const missing = [before, after].filter((m) => !m.definitions).map((m) => m.backupId);
  if (missing.length > 0)
    return { comparable: false, reason: `${missing.join(' and ')} ${missing.length === 1 ? 'predates' : 'predate'} definition summaries` };
  return { comparable: true, changes: compareDefinitions(before.definitions as Definitions, after.definitions as Definitions) };
}
