import { execa } from 'execa';
import { childOptions, yieldCpu } from '../child-pipes.ts';
import { withPgEnv } from '../connection.ts';
import { withMaintenanceClient } from '../restore/scratch.ts';
import { describeExit, firstErrorLine } from '../failures.ts';
import { findPgProgram } from '../tools.ts';

/** What pg_amcheck found: `clean`, the corruption it reported, or why it did not run (then nothing is claimed). */
export type Amcheck = { ran: true; corruption: string[] } | { ran: false; why: string };

/**
 * pg_amcheck on a restored copy: every table's heap and every btree index (`heapallindexed`: and every heap
 * tuple found in its indexes, which reads each table through them). It needs the amcheck extension; one it
 * installs into a database that is kept is removed again. Its locks harm nobody: the copy is new.
 */
export async function runAmcheck(
  url: string,
  database: string,
  o: { pgDump: string; major: number; heapallindexed: boolean; keep: boolean; signal?: AbortSignal | undefined },
): Promise<Amcheck> {
  const bin = await findPgProgram('pg_amcheck', o.pgDump, o.major);
  if (!bin) return { ran: false, why: `pg_amcheck is not installed (postgresql-client-${o.major}, PostgreSQL 14 or later)` };
  const had = await hasAmcheck(url);
  try {
    const res = await withPgEnv(url, (env) =>
      yieldCpu(
        execa(bin, ['--no-password', '--install-missing', ...(o.heapallindexed ? ['--heapallindexed'] : []), `--database=${database}`], {
          ...childOptions(o.signal),
          env,
          extendEnv: false,
          stdin: 'ignore',
          buffer: true,
          all: false,
        }),
      ),
    );
    const out = String(res.stdout ?? '').trim();
    const err = String(res.stderr ?? '').trim();
    // Exit 2: it ran and found corruption, one report per object; anything else that failed is the check's own.
    if (res.exitCode === 2 && out) return { ran: true, corruption: reports(out) };
    if (res.failed) return { ran: false, why: `pg_amcheck failed (${firstErrorLine(err) || describeExit(res)})` };
    return { ran: true, corruption: [] };
  } finally {
    if (!had && o.keep) await dropAmcheck(url).catch(() => undefined);
  }
}

/** pg_amcheck's report, one sentence per object: `heap table "db.public.t", block 0, offset 3: …`. */
function reports(out: string): string[] {
  const lines = out.split('\n').filter((l) => l.trim() !== '');
  const objects: string[] = [];
  for (const l of lines) if (!l.startsWith(' ')) objects.push(l.replace(/:$/, ''));
  return (objects.length > 0 ? objects : lines).map((l) => `amcheck: ${l}`);
}

const hasAmcheck = (url: string) =>
  withMaintenanceClient(url, async (c) => (await c.query(`SELECT 1 FROM pg_extension WHERE extname = 'amcheck'`)).rows.length > 0);

const dropAmcheck = (url: string) => withMaintenanceClient(url, (c) => c.query('DROP EXTENSION IF EXISTS amcheck'));
