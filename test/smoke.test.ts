import { describe, expect, inject, it } from 'vitest';
import pg from 'pg';
import { Redis } from 'ioredis';

describe('test services', () => {
  it('has a throwaway PostgreSQL and Redis', async () => {
    const c = new pg.Client({ connectionString: inject('pgUrl') });
    await c.connect();
    const { rows } = await c.query<{ v: string }>("select current_setting('server_version_num') as v");
    await c.end();
    expect(Number(rows[0]?.v)).toBeGreaterThan(120000);
    const r = new Redis(inject('redisUrl'));
    expect(await r.ping()).toBe('PONG');
    await r.quit();
  });
});
