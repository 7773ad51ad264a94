import type { TocEntry } from './toc.ts';

/**
 * Each materialized view a selective restore refreshes (its MATERIALIZED VIEW DATA entry in the plan), with the tables
 * it reads (through views and other materialized views too) that the plan creates without their rows: refreshed from those, it
 * comes back empty or short of what it held (QA: `--schema` of a reporting schema brought its view back with 0 rows,
 * under a ✅). Keyed by `schema.view`; views reading only restored rows are left out.
 */
export function rowlessSources(entries: readonly TocEntry[], planned: readonly TocEntry[], selected: ReadonlySet<number>): Map<string, string[]> {
  const byId = new Map(entries.map((e) => [e.id, e]));
  // Only what the plan restores: a view it leaves alone, or a table it does not create, is not this restore's (second
  // reader: `--table=shop.orders` named a reporting view it never touched).
  const inPlan = new Set(planned.map((e) => e.id));
  const out = new Map<string, string[]>();
  for (const data of planned.filter((e) => e.desc === 'MATERIALIZED VIEW DATA')) {
    const rowless = new Set<string>();
    const seen = new Set<number>();
    const walk = (id: number) => {
      if (seen.has(id)) return;
      seen.add(id);
      const e = byId.get(id);
      if (!e) return;
      if (e.desc === 'TABLE') {
        if (inPlan.has(e.id) && !selected.has(e.id)) rowless.add(`${e.schema}.${e.tag}`);
        return;
      }
      if (e.desc === 'VIEW' || e.desc === 'MATERIALIZED VIEW' || e.desc === 'MATERIALIZED VIEW DATA') for (const d of e.deps) walk(d);
    };
    walk(data.id);
    if (rowless.size > 0) out.set(`${data.schema}.${data.tag}`, [...rowless].sort());
  }
  return out;
}
