import { formatCount } from '../format.ts';
import type { DataDrift, TableGrowth, TableLoss } from './data-drift.ts';
import type { SchemaChange, SchemaDrift } from './schema-drift.ts';

/** Drift as people read it: plain text lines (callers escape for Slack), shared by the condition, the thread and `/backup diff`. */

/** A screenful: more schema changes than this are counted, not listed. */
export const SCREENFUL = 25;

/** `shop."Audit Log"`: a name `/restore --table=` takes back exactly (unquoted names fold to lower case there). */
export function tableArg(schema: string, table: string): string {
  const part = (s: string) => (/^[a-z_][a-z0-9_$]*$/.test(s) ? s : `"${s.replace(/"/g, '""')}"`);
  return `${part(schema)}.${part(table)}`;
}

/** The command that brings a table back from `backupId` into a new database. */
export function restoreCommand(backupId: string, t: { schema: string; table: string }): string {
  return `/restore ${backupId} --table=${tableArg(t.schema, t.table)}`;
}

const rows = (n: number) => `${formatCount(n)} ${n === 1 ? 'row' : 'rows'}`;

/** `shop.order_items: 7,500 rows → 0 (emptied)`. */
export function lossText(l: TableLoss): string {
  const after = l.after === null ? 'gone' : formatCount(l.after);
  const what = l.kind === 'dropped' ? 'dropped' : l.kind === 'emptied' ? 'emptied' : `−${Math.round(((l.before - (l.after ?? 0)) / l.before) * 100)} %`;
  return `${l.schema}.${l.table}: ${rows(l.before)} → ${after} (${what})`;
}

/** `shop.events: 100 rows → 2,000 (20×)`. */
export function growthText(g: TableGrowth): string {
  const factor = g.before > 0 ? `${Math.round((g.after / g.before) * 10) / 10}×` : 'was empty';
  return `${g.schema}.${g.table}: ${rows(g.before)} → ${formatCount(g.after)} (${factor})`;
}

export function changeText(c: SchemaChange): string {
  return `${c.kind} ${c.name} ${c.change}`;
}

/** At most `max` lines, then one line counting the rest. */
export function capped(lines: string[], max = SCREENFUL): string[] {
  return lines.length <= max ? lines : [...lines.slice(0, max), `… and ${lines.length - max} more`];
}

/** Schema drift as lines: the changes (a screenful at most), "no changes", or why it was not compared. */
export function schemaLines(d: SchemaDrift): string[] {
  if (!d.comparable) return [`not compared: ${d.reason}`];
  if (d.changes.length === 0) return ['no changes'];
  return capped(d.changes.map(changeText));
}

/** Data drift as lines: tables that lost rows (each with its restore command from `earlier`), tables that grew. */
export function dataLines(d: DataDrift, earlier: string): string[] {
  if (!d.comparable) return [`not compared: ${d.reason}`];
  const lost = d.lost.map((l) => `${lossText(l)} — \`${restoreCommand(earlier, l)}\``);
  const grown = d.grown.map((g) => `grew: ${growthText(g)}`);
  return lost.length + grown.length === 0 ? ['no table lost or gained rows beyond the thresholds'] : capped([...lost, ...grown]);
}
