import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { withClient } from './postgres-helpers.ts';

/**
 * An application database as teams have them (test/fixtures/app-database.sql), made the way they are made: ICU
 * default collation, `ALTER DATABASE … SET search_path` and `timezone`, a per-database role setting, a comment,
 * and a NOLOGIN role that owns part of it. Names are random: roles are cluster-wide and tests run in parallel.
 */
export interface AppDatabase {
  name: string;
  url: string;
  /** The application role that owns billing's objects. */
  role: string;
  drop(): Promise<void>;
}

const quote = (ident: string) => `"${ident.replace(/"/g, '""')}"`;

/** `ownedByRole`: the database itself owned by the app's role (as most are), not by the role that creates it. */
export async function createAppDatabase(serverUrl: string, prefix = 'app', o: { ownedByRole?: boolean } = {}): Promise<AppDatabase> {
  const suffix = randomBytes(5).toString('hex');
  const name = `${prefix}_${suffix}`;
  const role = `${prefix}_owner_${suffix}`;
  await withClient(serverUrl, async (c) => {
    await c.query(`CREATE ROLE ${quote(role)} NOLOGIN`);
    await c.query(`CREATE DATABASE ${quote(name)} TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C.UTF-8' LOCALE_PROVIDER icu ICU_LOCALE 'en-US'`);
    if (o.ownedByRole) await c.query(`ALTER DATABASE ${quote(name)} OWNER TO ${quote(role)}`);
    // The database's own name inside a setting, as teams name a schema after their database (QA: read as a difference).
    await c.query(`ALTER DATABASE ${quote(name)} SET search_path = billing, public, ${quote(name)}`);
    await c.query(`ALTER DATABASE ${quote(name)} SET timezone = 'America/New_York'`);
    await c.query(`ALTER ROLE ${quote(role)} IN DATABASE ${quote(name)} SET work_mem = '8MB'`);
    await c.query(`COMMENT ON DATABASE ${quote(name)} IS 'the application''s database'`);
  });
  const u = new URL(serverUrl);
  u.pathname = `/${name}`;
  const url = u.toString();
  const sql = await readFile(new URL('../fixtures/app-database.sql', import.meta.url), 'utf8');
  await withClient(url, (c) => c.query(sql.replaceAll(':"app_role"', quote(role))));
  return {
    name,
    url,
    role,
    async drop() {
      await withClient(serverUrl, async (c) => {
        await c.query(`DROP DATABASE IF EXISTS ${quote(name)} WITH (FORCE)`);
        // Restored copies may still hold objects it owns; the test that made them drops them first.
        await c.query(`DROP ROLE IF EXISTS ${quote(role)}`).catch(() => undefined);
      });
    },
  };
}
