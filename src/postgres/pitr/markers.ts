import { formatDuration } from '../../format.ts';
import pg from 'pg';
import { pgClientConfig } from '../connection.ts';

/**
 * Exact-point markers: a row the bot writes on the source every `everySeconds` into `pgbb_pitr.markers` (a schema
 * of its own), the time taken by the server as it inserts. A restore to a moment T must hold every marker written
 * clearly before T and none written after it: that proves replay stopped where it was asked, not just somewhere.
 * A marker's time precedes its commit by the insert's own duration, so markers within MARGIN_MS before T are
 * judged neither way.
 */
export const MARKER_TABLE = 'pgbb_pitr.markers';
export const MARGIN_MS = 2000;

export interface CheckResult {
  name: string;
  /** null: the check did not run (said why); never counted as passed. */
  ok: boolean | null;
  detail: string;
}

const DDL = [
  'CREATE SCHEMA IF NOT EXISTS pgbb_pitr',
  `CREATE TABLE IF NOT EXISTS ${MARKER_TABLE} (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())`,
];

/** Why the markers cannot be written, in one sentence with the fix; null when the error is something else. */
export function markerProblem(err: unknown, target: string): string | null {
  const code = (err as { code?: string }).code;
  if (code !== '42501') return null;
  return `Markers for ${target} cannot be written: the bot's role may not create the schema pgbb_pitr or its table (${(err as Error).message}). Create them once as an owner (\`CREATE SCHEMA pgbb_pitr AUTHORIZATION <the bot's role>\`) or set \`pitr.markers: false\`; until then PITR restore tests report the exact-point check as not run.`;
}

/**
 * One marker on the source, and those older than `keepDays` removed (the window's worth is kept). The schema and
 * table are created when missing; a role that may not create them gets markerProblem's sentence from the caller.
 */
export async function writeMarker(url: string, keepDays: number): Promise<Date> {
  const c = new pg.Client({ ...pgClientConfig(url), application_name: 'pg-backup-bot markers' });
  await c.connect();
  try {
    const exists = await c.query(`SELECT to_regclass('${MARKER_TABLE}') IS NOT NULL AS e`);
    if (!exists.rows[0]?.e) for (const sql of DDL) await c.query(sql);
    const { rows } = await c.query<{ at: Date }>(`INSERT INTO ${MARKER_TABLE} DEFAULT VALUES RETURNING at`);
    await c.query(`DELETE FROM ${MARKER_TABLE} WHERE at < now() - make_interval(days => $1)`, [keepDays]);
    return rows[0]?.at as Date;
  } finally {
    await c.end().catch(() => undefined);
  }
}

type Marker = { id: string; at: Date };
const fmt = (d: Date) => d.toISOString();

/**
 * The exact-point check: the source's markers (read now) against the restored copy's. Every marker written more
 * than MARGIN_MS before `at` must be in the copy, every marker written after `at` must not. Not run (ok null)
 * when the source has no marker table or no marker lies near enough to judge by.
 */
export async function checkMarkers(o: {
  sourceUrl: string;
  restored: <T>(fn: (c: pg.Client) => Promise<T>) => Promise<T>;
  at: Date;
  since: Date;
  /** How often markers are written (pitr.markers.everySeconds): a longer silence before the target is unproven. */
  everyMs?: number;
}): Promise<CheckResult> {
  const name = 'exact point (markers)';
  const read = async (c: pg.Client): Promise<Marker[] | null> => {
    const e = await c.query(`SELECT to_regclass('${MARKER_TABLE}') IS NOT NULL AS e`);
    if (!e.rows[0]?.e) return null;
    // In the order they were written: by time, then by the id as a number (ordering by the text alias put 10 before 9).
    return (await c.query<Marker>(`SELECT m.id::text AS id, m.at FROM ${MARKER_TABLE} m ORDER BY m.at, m.id`)).rows;
  };
  let source: Marker[] | null;
  const c = new pg.Client(pgClientConfig(o.sourceUrl));
  try {
    await c.connect();
    source = await read(c);
  } catch (err) {
    return { name, ok: null, detail: `not run: the source's markers could not be read (${(err as Error).message})` };
  } finally {
    await c.end().catch(() => undefined);
  }
  if (!source)
    return {
      name,
      ok: null,
      detail: `not run: the source has no ${MARKER_TABLE}: markers are off (pitr.markers: false), no worker has written one yet, or the bot's role may not create the schema (create it once as an owner: CREATE SCHEMA pgbb_pitr AUTHORIZATION <the bot's role>)`,
    };
  const cut = o.at.getTime();
  const before = source.filter((m) => m.at.getTime() < cut - MARGIN_MS && m.at.getTime() >= o.since.getTime());
  const after = source.filter((m) => m.at.getTime() > cut);
  if (before.length === 0 && after.length === 0)
    return { name, ok: null, detail: `not run: no marker was written between ${fmt(o.since)} and the target, nor after it` };
  const restored = (await o.restored(read)) ?? [];
  // A marker is its id and its time: the same id written at another time is another marker. Ids the copy and the
  // source both hold at different times mean the source's table was replaced since (a replacement restored it from
  // a logical backup, and its sequence started over): the source no longer tells what the copy should hold (QA: a
  // false "replay went past the target").
  const atById = new Map(restored.map((m) => [m.id, m.at.getTime()]));
  const replaced = source.filter((m) => atById.has(m.id) && atById.get(m.id) !== m.at.getTime());
  if (replaced.length > 0)
    return {
      name,
      ok: null,
      detail: `not judged: ${replaced.length} marker(s) of the source have another time than the same marker in the copy (first: id ${(replaced[0] as Marker).id}): the source's ${MARKER_TABLE} was replaced since the target (a restore or replacement of the source), so it no longer shows what the copy should hold`,
    };
  const key = (m: Marker) => `${m.id}@${m.at.getTime()}`;
  const have = new Set(restored.map(key));
  const missing = before.filter((m) => !have.has(key(m)));
  const extra = after.filter((m) => have.has(key(m)));
  const lastBefore = before.at(-1);
  const firstAfter = after[0];
  const around = `${lastBefore ? `newest expected written ${fmt(lastBefore.at)}` : 'none written before'}; ${firstAfter ? `first after written ${fmt(firstAfter.at)}` : 'none written after yet'}`;
  if (missing.length || extra.length) {
    const why = [
      missing.length
        ? `${missing.length} marker(s) written before the target are missing (first written ${fmt((missing[0] as Marker).at)}): replay stopped early`
        : '',
      extra.length
        ? `${extra.length} marker(s) written after the target are present (first written ${fmt((extra[0] as Marker).at)}): replay went past the target`
        : '',
    ].filter(Boolean);
    return { name, ok: false, detail: `${why.join('; ')} (${around})` };
  }
  // Markers after the target absent show only that replay did not go past it: that it got there takes one before it.
  if (before.length === 0)
    return {
      name,
      ok: null,
      detail: `not proven: no marker was written between ${fmt(o.since)} and the target, so nothing shows that replay reached it (${after.length} written after it absent)`,
    };
  // The source wrote none in the stretch before the target (a moment on a timeline the source left at a promotion: its
  // markers of that stretch are the old primary's, which the source never had): what replay did there is unproven (QA:
  // "✅" on 83 s nobody checked).
  const silent = lastBefore ? cut - lastBefore.at.getTime() : 0;
  if (o.everyMs && silent > Math.max(3 * o.everyMs, 60_000))
    return {
      name,
      ok: null,
      detail: `not proven for the last ${formatDuration(silent)} before the target: the source holds no marker written then (markers every ${formatDuration(o.everyMs)}; a moment on a timeline it left at a promotion, or a marker writer that was stopped); ${before.length} marker(s) before that present, ${after.length} after the target absent (${around})`,
    };
  return { name, ok: true, detail: `${before.length} marker(s) written before the target present, ${after.length} written after it absent (${around})` };
}
