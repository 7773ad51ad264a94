import type { PoolClient, Client } from 'pg';

/** The role attributes pg_dumpall writes as keywords, and the pg_roles column that holds each. */
const ATTRIBUTES = [
  ['SUPERUSER', 'rolsuper'],
  ['CREATEDB', 'rolcreatedb'],
  ['CREATEROLE', 'rolcreaterole'],
  ['LOGIN', 'rolcanlogin'],
  ['REPLICATION', 'rolreplication'],
  ['BYPASSRLS', 'rolbypassrls'],
] as const;

type Row = { rolname: string } & Record<(typeof ATTRIBUTES)[number][1], boolean>;

/** The attributes the backup's ALTER ROLE statements give a role (`LOGIN` true, `NOLOGIN` false; unsaid: absent). */
export function backupAttributes(alters: readonly string[]): Map<string, boolean> {
  const said = new Map<string, boolean>();
  for (const sql of alters) {
    const words = sql.replace(/ PASSWORD '(?:[^']|'')*'/g, '').replace(/ VALID UNTIL '(?:[^']|'')*'/g, '');
    for (const [word] of ATTRIBUTES) {
      if (new RegExp(` NO${word}(?=[ ;]|$)`).test(words)) said.set(word, false);
      else if (new RegExp(` ${word}(?=[ ;]|$)`).test(words)) said.set(word, true);
    }
  }
  return said;
}

/**
 * Roles the server already had are kept as they are (globals-apply.ts); where one differs from the backup's in an
 * attribute that decides what it may do (LOGIN above all), that is said, with the attributes on both sides (QA: an
 * existing NOLOGIN app_owner was "kept", the restore verified, and the application could not log in).
 */
export async function keptDifferences(
  c: Pick<Client | PoolClient, 'query'>,
  kept: readonly string[],
  statements: ReadonlyArray<{ role: string | null; kind: string; sql: string }>,
): Promise<string[]> {
  if (kept.length === 0) return [];
  const { rows } = await c.query<Row>(`SELECT rolname, ${ATTRIBUTES.map(([, col]) => col).join(', ')} FROM pg_roles WHERE rolname = ANY($1::text[])`, [kept]);
  const notes: string[] = [];
  for (const row of rows) {
    const wanted = backupAttributes(statements.filter((s) => s.kind === 'alter' && s.role === row.rolname).map((s) => s.sql));
    const differ = ATTRIBUTES.filter(([word, col]) => wanted.has(word) && wanted.get(word) !== row[col]);
    if (differ.length === 0) continue;
    const here = differ.map(([word, col]) => (row[col] ? word : `NO${word}`)).join(' ');
    const there = differ.map(([word]) => (wanted.get(word) ? word : `NO${word}`)).join(' ');
    notes.push(
      `role ${row.rolname} was kept as this server has it, which differs from the backup's: ${here} here, ${there} in the backup; ALTER ROLE it by hand if the restored database's users need the backup's.`,
    );
  }
  return notes;
}
