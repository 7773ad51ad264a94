import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { parseDatabaseScript } from '../../../src/postgres/restore/db-properties.ts';
import { runRestoreTest } from '../../../src/postgres/restore/index.ts';
import type { Manifest } from '../../../src/storage/index.ts';
import { appBackedUp } from '../../support/app-backups.ts';
import { silentLog, type tempStorage } from '../../support/postgres-helpers.ts';

describe('database properties from the archive', () => {
  it('reads the locale options, settings, connection limit, per-role settings, comment, grants and owner of pg_restore --create, and nothing else', () => {
    const script = [
      '--',
      '-- Name: Shop DB; Type: DATABASE; Schema: -; Owner: postgres',
      '\\restrict abc',
      `CREATE DATABASE "Shop DB" WITH TEMPLATE = template0 ENCODING = 'UTF8' LOCALE_PROVIDER = icu LOCALE = 'C.UTF-8' ICU_LOCALE = 'en-US' OWNER_EVIL = 'x';`,
      'ALTER DATABASE "Shop DB" OWNER TO postgres;',
      '\\connect -reuse-previous=on "dbname=\'Shop DB\'"',
      `COMMENT ON DATABASE "Shop DB" IS 'shop; the "main" one
spanning two lines';`,
      `ALTER DATABASE "Shop DB" SET search_path TO 'billing', 'public';`,
      `ALTER ROLE "App Owner" IN DATABASE "Shop DB" SET work_mem TO '8MB';`,
      'ALTER DATABASE "Shop DB" CONNECTION LIMIT = 50;',
      'ALTER DATABASE "Shop DB" ALLOW_CONNECTIONS = false;',
      '-- Name: DATABASE "Shop DB"; Type: ACL; Schema: -; Owner: postgres',
      'REVOKE CONNECT,TEMPORARY ON DATABASE "Shop DB" FROM PUBLIC;',
      'GRANT CONNECT ON DATABASE "Shop DB" TO app_rw;',
      '\\unrestrict abc',
    ].join('\n');
    expect(parseDatabaseScript(script)).toEqual({
      source: 'Shop DB',
      createOptions: `ENCODING = 'UTF8' LOCALE_PROVIDER = icu LOCALE = 'C.UTF-8' ICU_LOCALE = 'en-US'`,
      statements: [
        { sql: `COMMENT ON DATABASE {{db}} IS 'shop; the "main" one\nspanning two lines'`, role: null },
        { sql: `ALTER DATABASE {{db}} SET search_path TO 'billing', 'public'`, role: null },
        { sql: `ALTER ROLE "App Owner" IN DATABASE {{db}} SET work_mem TO '8MB'`, role: 'App Owner' },
        { sql: 'ALTER DATABASE {{db}} CONNECTION LIMIT = 50', role: null },
        // Its grants: applied only by a restore that keeps grants.
        { sql: 'REVOKE CONNECT,TEMPORARY ON DATABASE {{db}} FROM PUBLIC', role: null, acl: true },
        { sql: 'GRANT CONNECT ON DATABASE {{db}} TO app_rw', role: null, acl: true },
      ],
      // Kept apart: given to the copy only by a restore that keeps owners.
      owner: 'postgres',
    });
    expect(parseDatabaseScript('-- nothing here\n')).toBeNull();
  });

  describe('a restore test of an application database', () => {
    let store: Awaited<ReturnType<typeof tempStorage>>;
    let manifest: Manifest;
    let tempDir: string;
    let cleanup: () => Promise<void>;

    beforeAll(async () => {
      ({ store, manifest, tempDir, cleanup } = await appBackedUp(inject('pgUrl'), 'props'));
    });
    afterAll(async () => cleanup?.());

    // Each query fails (division by zero, or an unknown relation) unless the scratch copy behaves as its source.
    const asTheSource = [
      // search_path = billing, public (ALTER DATABASE … SET): unqualified names resolve as the application's do.
      { name: 'search_path', sql: 'SELECT count(*) FROM "Invoice"' },
      { name: 'timezone', sql: `SELECT 1 / (current_setting('TimeZone') = 'America/New_York')::int` },
      // The ICU collation sorts punctuation and case as en-US does, not as the server's default.
      { name: 'collation', sql: `SELECT 1 / (string_agg(x, ',' ORDER BY x) = '_z,a,B,c')::int FROM (VALUES ('a'), ('B'), ('c'), ('_z')) v(x)` },
      {
        name: 'comment',
        sql: `SELECT 1 / (shobj_description(oid, 'pg_database') = 'the application''s database')::int FROM pg_database WHERE datname = current_database()`,
      },
      {
        name: 'per-role setting',
        sql: `SELECT 1 / count(*)::int FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase AND d.datname = current_database() WHERE s.setrole <> 0`,
      },
    ];

    it('gives the scratch database the source’s collation, settings and comment, so queries behave as in production', async () => {
      const outcome = await runRestoreTest({
        manifest,
        storage: store.storage,
        serverUrl: inject('pgUrl'),
        scratchKey: `job:props-${process.pid}`,
        tempDir,
        smokeQueries: asTheSource,
        log: silentLog,
      });
      expect(outcome.problems).toEqual([]);
      expect(outcome.checked.smokeQueries.map((q) => [q.name, q.ok, q.error])).toEqual(asTheSource.map((q) => [q.name, true, null]));
      expect(outcome.passed).toBe(true);
      expect(outcome.dropped).toBe(true);
    });
  });
});
