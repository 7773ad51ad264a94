import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.ts';

describe('pitr.markers in the config file', () => {
  let dir: string;
  const env = { DATABASE_URL: 'postgres://h/shop', SHOP_REPLICATION_URL: 'postgres://replicator@h/shop' };
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pgbb-markers-cfg-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  const load = async (markers: string) => {
    const file = join(dir, `${Math.random()}.yml`);
    await writeFile(
      file,
      `targets:\n  - name: shop\n    url: postgres://h/shop\n    environment: staging\n    pitr: { urlEnv: SHOP_REPLICATION_URL${markers} }\n`,
    );
    return loadConfig({ ...env, BOT_CONFIG: file }, 'offline');
  };

  it('is on, every 60 s, by default; false turns it off; an interval of its own is kept', async () => {
    expect((await load('')).targets[0]?.pitr?.markers).toEqual({ everySeconds: 60 });
    expect((await load(', markers: false')).targets[0]?.pitr?.markers).toBe(false);
    expect((await load(', markers: { everySeconds: 15 }')).targets[0]?.pitr?.markers).toEqual({ everySeconds: 15 });
  });

  it('refuses an interval below 5 s and true (say false, or give the interval)', async () => {
    await expect(load(', markers: { everySeconds: 1 }')).rejects.toThrow(/markers/);
    await expect(load(', markers: true')).rejects.toThrow(/markers/);
  });
});
