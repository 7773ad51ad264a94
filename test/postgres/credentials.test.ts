import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEphemeralPostgres, type EphemeralPostgres } from '../../src/dev/ephemeral.ts';
import { BotError } from '../../src/errors.ts';
import { runBackup } from '../../src/postgres/backup/index.ts';
import { runSql } from '../support/databases.ts';
import { allCmdlines, backupOptions, childProcesses, hookedStorage, runsTool, tempStorage } from '../support/postgres-helpers.ts';

// `:` and `\` need escaping in a passfile, `@`, `/` and `%` in a URL: a password with all of them.
const PASSWORD = 'S3cr:et\\pass@w/rd%';

/**
 * The shared test server trusts everyone, which would hide both a wrong password and a missing passfile. This
 * file starts its own server that asks every role but postgres for a SCRAM password.
 */
describe('credentials', () => {
  let server: EphemeralPostgres;
  let hbaDir: string;
  let store: Awaited<ReturnType<typeof tempStorage>>;
  const urlWith = (password: string) => {
    const u = new URL(server.url);
    u.username = 'alice';
    u.password = encodeURIComponent(password);
    u.pathname = '/alicedb';
    return u.toString();
  };

  beforeAll(async () => {
    hbaDir = await mkdtemp(join(tmpdir(), 'pgbb-hba-'));
    await chmod(hbaDir, 0o755); // the server runs as the postgres user
    const hba = join(hbaDir, 'pg_hba.conf');
    await writeFile(hba, 'local all postgres trust\nhost all postgres 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 scram-sha-256\n');
    await chmod(hba, 0o644);
    server = await startEphemeralPostgres({ settings: { hba_file: hba } });
    await runSql(server.url, `CREATE ROLE alice LOGIN PASSWORD '${PASSWORD.replace(/'/g, "''")}'`);
    await runSql(server.url, 'CREATE DATABASE alicedb OWNER alice');
    const u = new URL(server.url);
    u.pathname = '/alicedb';
    await runSql(u.toString(), `SET ROLE alice; CREATE TABLE big AS SELECT i, md5(i::text) AS a FROM generate_series(1, 300000) i`);
    store = await tempStorage();
  });
  afterAll(async () => {
    await server?.stop();
    await store?.cleanup();
    if (hbaDir) await rm(hbaDir, { recursive: true, force: true });
  });

  it('reports a wrong password as pg_auth_failed without repeating it', async () => {
    const err = await runBackup(backupOptions(urlWith('wrong-password'), store.storage)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BotError);
    expect((err as BotError).code).toBe('pg_auth_failed');
    expect((err as BotError).userMessage).toMatch(/rejected the password of user "alice"/);
    expect(JSON.stringify([(err as BotError).userMessage, (err as BotError).message])).not.toContain('wrong-password');
    expect(await store.storage.list()).toEqual([]);
  });

  it('never puts the password in argv: pg_dump reads it from a 0600 passfile that is gone afterwards', async () => {
    const seen: Array<{ cmdline: string; environ: string }> = [];
    let passfile = '';
    let passfileMode = 0;
    let everyCmdline: string[] = [];
    const storage = hookedStorage(store.storage, {
      // pg_dump is running (and stalled by back-pressure) while this looks at /proc.
      onFirstChunk: async () => {
        seen.push(...(await childProcesses()));
        everyCmdline = await allCmdlines();
        const dump = seen.find((p) => runsTool(p, 'pg_dump'));
        passfile = /^PGPASSFILE=(.*)$/m.exec(dump?.environ ?? '')?.[1] ?? '';
        passfileMode = (await stat(passfile)).mode & 0o777;
        expect(await readFile(passfile, 'utf8')).toBe('*:*:*:*:S3cr\\:et\\\\pass@w/rd%\n');
      },
    });
    const manifest = await runBackup(backupOptions(urlWith(PASSWORD), storage));

    expect(seen.some((p) => runsTool(p, 'pg_dump'))).toBe(true);
    for (const p of seen) {
      expect(p.cmdline).not.toContain(PASSWORD);
      expect(p.environ).not.toContain(PASSWORD);
      expect(p.environ).not.toMatch(/^PGPASSWORD=/m);
    }
    expect(everyCmdline.length).toBeGreaterThan(0);
    for (const c of everyCmdline) expect(c).not.toContain(PASSWORD);
    expect(passfileMode).toBe(0o600);
    await expect(stat(passfile)).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(stat(dirname(passfile))).rejects.toMatchObject({ code: 'ENOENT' });

    // alice is no superuser: globals are kept without role passwords, and the manifest says why.
    expect(manifest.globals).toEqual({ included: true, rolePasswords: false, note: 'role passwords skipped: the backup role is not a superuser' });
    expect(JSON.stringify(manifest)).not.toContain(PASSWORD);
    expect(manifest.verification.tables).toEqual([{ schema: 'public', table: 'big', rows: 300000 }]);
  });
});
