import { readFile, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BotError } from '../../src/errors.ts';
import { parsePgUrl, pgClientConfig, serverLabel, withPgEnv } from '../../src/postgres/index.ts';

describe('parsePgUrl', () => {
  it('maps URL parts and query parameters to libpq variables and keeps the password apart', () => {
    const { env, password } = parsePgUrl('postgresql://bob:p%40ss%3Aword@db.internal:6432/My%20Db?sslmode=require&application_name=x&connect_timeout=3');
    expect(env).toEqual({
      PGHOST: 'db.internal',
      PGPORT: '6432',
      PGUSER: 'bob',
      PGDATABASE: 'My Db',
      PGSSLMODE: 'require',
      PGAPPNAME: 'x',
      PGCONNECT_TIMEOUT: '3',
    });
    expect(password).toBe('p@ss:word');
  });

  it('reads a socket directory host and IPv6 literals', () => {
    expect(parsePgUrl('postgres://u@%2Fvar%2Frun%2Fpostgresql/app').env.PGHOST).toBe('/var/run/postgresql');
    expect(parsePgUrl('postgres://u@[::1]:5433/app').env).toMatchObject({ PGHOST: '::1', PGPORT: '5433' });
    expect(parsePgUrl('postgres:///app?host=/tmp&port=5499').env).toMatchObject({ PGHOST: '/tmp', PGPORT: '5499', PGDATABASE: 'app' });
  });

  it('refuses parameters it cannot pass on, naming the parameter but never a value', () => {
    expect(() => parsePgUrl('postgres://u:secret@h/db?bogus=1')).toThrow(BotError);
    expect(() => parsePgUrl('postgres://u:secret@h/db?bogus=1')).toThrow(/"bogus"/);
    // It throws (a MySQL URL is no target), and what it says names the scheme it needs, never the password.
    const refused = (() => {
      try {
        parsePgUrl('mysql://u:secret@h/db');
        return null;
      } catch (err) {
        return err as Error;
      }
    })();
    expect(refused).toBeInstanceOf(BotError);
    expect(refused?.message).toMatch(/must start with postgres:\/\/ or postgresql:\/\//);
    expect(refused?.message).not.toContain('secret');
  });
});

describe('serverLabel', () => {
  it('is host:port, without user or password', () => {
    expect(serverLabel('postgres://bob:secret@10.0.0.5/db')).toBe('10.0.0.5:5432');
  });
});

describe('withPgEnv', () => {
  it('passes the password through a 0600 passfile in a private directory, removed afterwards', async () => {
    let file = '';
    const env = await withPgEnv('postgres://bob:a%3Ab%5Cc@h:1/db', async (e) => {
      file = e.PGPASSFILE ?? '';
      expect((await stat(file)).mode & 0o777).toBe(0o600);
      expect((await stat(dirname(file))).mode & 0o777).toBe(0o700);
      expect(await readFile(file, 'utf8')).toBe('*:*:*:*:a\\:b\\\\c\n');
      return e;
    });
    expect(env).toMatchObject({ PGHOST: 'h', PGPORT: '1', PGUSER: 'bob', PGDATABASE: 'db' });
    expect(Object.values(env).join('\n')).not.toContain('a:b');
    await expect(stat(dirname(file))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('removes the passfile when the work throws, and drops PG* variables inherited from the parent', async () => {
    let file = '';
    await expect(
      withPgEnv(
        'postgres://bob:pw@h/db',
        async (e) => {
          file = e.PGPASSFILE ?? '';
          expect(e.PGPASSWORD).toBeUndefined();
          expect(e.PGSERVICE).toBeUndefined();
          expect(e.HOME).toBe('/home/x');
          throw new Error('boom');
        },
        { baseEnv: { PGPASSWORD: 'stray', PGSERVICE: 'prod', HOME: '/home/x' } },
      ),
    ).rejects.toThrow('boom');
    await expect(stat(file)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('writes no passfile when the URL has no password', async () => {
    await withPgEnv('postgres://bob@h/db', async (e) => {
      expect(e.PGPASSFILE).toBeUndefined();
    });
  });
});

describe('pgClientConfig', () => {
  it('follows sslmode: disable/prefer without TLS, require without verification, verify-full with it', () => {
    expect(pgClientConfig('postgres://u:pw@h:7/db').ssl).toBe(false);
    expect(pgClientConfig('postgres://u@h/db?sslmode=require').ssl).toEqual({ rejectUnauthorized: false });
    expect(pgClientConfig('postgres://u@h/db?sslmode=verify-full').ssl).toEqual({ rejectUnauthorized: true });
    expect(pgClientConfig('postgres://u:pw@h:7/db')).toMatchObject({ host: 'h', port: 7, user: 'u', password: 'pw', database: 'db' });
  });
});

describe('parsePgUrl: a % the URL does not encode (QA: "URI malformed", said as a failed query)', () => {
  it('names the part and how to encode it, and never the password', () => {
    let message = '';
    try {
      parsePgUrl('postgres://app:Sup3r%S3cret@db:5432/shop');
    } catch (err) {
      message = (err as { userMessage?: string }).userMessage ?? String(err);
    }
    expect(message).toBe(
      "The database URL's password has a % that is not followed by two hex digits: percent-encode special characters there (% as %25, @ as %40, : as %3A, / as %2F).",
    );
    expect(message).not.toContain('S3cret');
    expect(parsePgUrl('postgres://app:Sup3r%25S3cret@db:5432/shop').password).toBe('Sup3r%S3cret');
  });
});
