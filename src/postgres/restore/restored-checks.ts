import pg from 'pg';
import type { Manifest } from '../../storage/index.ts';
import { compareCounts, type Comparison } from './compare.ts';
import { pgClientConfig } from '../connection.ts';
import { countObjects, countRows } from '../counts.ts';

export interface SmokeQuery {
  name: string;
  sql: string;
}

export interface SmokeResult {
  name: string;
  ok: boolean;
  error: string | null;
}

export interface RestoredChecks {
  comparison: Comparison;
  smokeQueries: SmokeResult[];
  /** Sentences for failed smoke queries. */
  smokeProblems: string[];
  restoredBytes: number;
}

/** A smoke query that hangs (a missing index on a big table) must fail the test, not stall it for hours. */
export const SMOKE_TIMEOUT_MS = 30_000;

/**
 * Inspects a freshly restored database: recounts rows and objects exactly as the backup counted them in its
 * snapshot, runs the smoke queries, and measures the database. A cancel ends the connection, which is the only
 * way to interrupt a running count(*).
 */
export async function checkRestored(o: {
  url: string;
  manifest: Manifest;
  smokeQueries: SmokeQuery[];
  signal?: AbortSignal | undefined;
  onPhase: (phase: 'verifying' | 'smoke-queries') => void;
  /** Settles when the copy may be written to: the smoke queries wait for it (a comparison reading the copy meanwhile). */
  readOnlyUntil?: Promise<unknown> | undefined;
}): Promise<RestoredChecks> {
  const client = new pg.Client(pgClientConfig(o.url));
  client.on('error', () => undefined);
  const onAbort = () => void client.end().catch(() => undefined);
  o.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    await client.connect();
    // Counting a big restore can take a while; a server-wide statement_timeout must not cut it short.
    await client.query('SET statement_timeout = 0');
    o.onPhase('verifying');
    // Measured before the smoke queries, which may create temp objects or write.
    const { rows } = await client.query<{ size: string }>('SELECT pg_database_size(current_database())::text AS size');
    const restoredBytes = Number(rows[0]?.size ?? 0);
    // Within the backup's scope: what pg_dump was told to leave out is not expected back.
    const scope = o.manifest.scope;
    const comparison = compareCounts(o.manifest.verification, { tables: await countRows(client, scope), objects: await countObjects(client, scope) });

    await o.readOnlyUntil;
    o.onPhase('smoke-queries');
    const smokeQueries: SmokeResult[] = [];
    const smokeProblems: string[] = [];
    await client.query(`SET statement_timeout = ${SMOKE_TIMEOUT_MS}`);
    for (const q of o.smokeQueries) {
      try {
        await client.query(q.sql);
        smokeQueries.push({ name: q.name, ok: true, error: null });
      } catch (err) {
        if (o.signal?.aborted) throw err;
        const message = err instanceof Error ? err.message : String(err);
        smokeQueries.push({ name: q.name, ok: false, error: message });
        smokeProblems.push(`smoke query "${q.name}" failed: ${message}`);
      }
    }
    return { comparison, smokeQueries, smokeProblems, restoredBytes };
  } finally {
    o.signal?.removeEventListener('abort', onAbort);
    await client.end().catch(() => undefined);
  }
}
