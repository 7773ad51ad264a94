/**
 * An archive's table of contents with dependencies, read from two pg_restore outputs (no connection needed):
 * - `pg_restore --list`: every entry in restore order, `<dumpId>; <catalog> <oid> <DESC> <schema> <tag> <owner>`.
 *   These lines, filtered, become the `-L` list file; their text is ambiguous to split (tags have spaces).
 * - `pg_restore --schema-only --verbose --file=-`: for every schema entry, `-- TOC entry <id> (class c OID o)`,
 *   `-- Dependencies: <ids>` and `-- Name: <tag>; Type: <DESC>; Schema: <schema>; Owner: <owner>`: unambiguous,
 *   and the only place pg_restore shows dependencies. Data entries are absent there; they are tied to their
 *   table by OID (TABLE DATA) or by schema, name and owner (SEQUENCE SET).
 */

export interface TocEntry {
  id: number;
  desc: string;
  /** '-' when the entry has no schema (SCHEMA, EXTENSION, …). */
  schema: string;
  tag: string;
  owner: string;
  oid: number;
  deps: number[];
  /** The `--list` line, as a `-L` file needs it. */
  line: string;
}

/** Data entries pg_restore prints only in `--list`, recognised by their leading DESC. */
const DATA_DESCS = ['TABLE DATA', 'SEQUENCE SET', 'BLOBS', 'BLOB', 'LARGE OBJECT'];

interface ListLine {
  id: number;
  oid: number;
  rest: string;
  line: string;
}

function parseList(listing: string): ListLine[] {
  const out: ListLine[] = [];
  for (const line of listing.split('\n')) {
    const m = /^(\d+); (\d+) (\d+) (.*)$/.exec(line);
    if (m) out.push({ id: Number(m[1]), oid: Number(m[3]), rest: m[4] ?? '', line });
  }
  return out;
}

interface Header {
  id: number;
  oid: number;
  deps: number[];
  desc: string;
  schema: string;
  tag: string;
  owner: string;
}

function parseVerbose(sql: string): Map<number, Header> {
  const out = new Map<number, Header>();
  let current: { id: number; oid: number; deps: number[] } | null = null;
  for (const line of sql.split('\n')) {
    if (!line.startsWith('-- ')) continue;
    const toc = /^-- TOC entry (\d+) \(class \d+ OID (\d+)\)$/.exec(line);
    if (toc) {
      current = { id: Number(toc[1]), oid: Number(toc[2]), deps: [] };
      continue;
    }
    if (!current) continue;
    const deps = /^-- Dependencies: ([\d ]+)$/.exec(line);
    if (deps) {
      current.deps = (deps[1] ?? '').trim().split(/\s+/).map(Number);
      continue;
    }
    // Greedy name, fixed-alphabet type: a tag may contain almost anything, a DESC only capitals and spaces.
    const name = /^-- (?:Data for )?Name: (.*); Type: ([A-Z ]+); Schema: (.*); Owner: (.*)$/.exec(line);
    if (name) {
      out.set(current.id, { ...current, tag: name[1] ?? '', desc: name[2] ?? '', schema: name[3] ?? '-', owner: (name[4] ?? '').trim() });
      current = null;
    }
  }
  return out;
}

/** Entries in restore order; data entries get their table's (or sequence's) dump id as their dependency. */
export function parseToc(listing: string, verboseSql: string): TocEntry[] {
  const headers = parseVerbose(verboseSql);
  const byOid = new Map<number, Header>();
  const byKey = new Map<string, Header>();
  for (const h of headers.values()) {
    if (h.desc === 'TABLE' || h.desc === 'MATERIALIZED VIEW') byOid.set(h.oid, h);
    if (h.desc === 'SEQUENCE') byKey.set(`${h.schema} ${h.tag} ${h.owner}`.trim(), h);
  }
  const out: TocEntry[] = [];
  for (const l of parseList(listing)) {
    const h = headers.get(l.id);
    if (h) {
      out.push({ id: l.id, desc: h.desc, schema: h.schema, tag: h.tag, owner: h.owner, oid: h.oid, deps: h.deps, line: l.line });
      continue;
    }
    const desc = DATA_DESCS.find((d) => l.rest.startsWith(`${d} `));
    if (!desc) continue;
    const rest = l.rest.slice(desc.length + 1).trim();
    const owner = desc === 'TABLE DATA' ? byOid.get(l.oid) : desc === 'SEQUENCE SET' ? byKey.get(rest) : undefined;
    out.push({
      id: l.id,
      desc,
      schema: owner?.schema ?? '-',
      tag: owner?.tag ?? rest,
      owner: owner?.owner ?? '',
      oid: l.oid,
      deps: owner ? [owner.id] : [],
      line: l.line,
    });
  }
  return out;
}
