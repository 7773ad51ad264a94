import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type EphemeralPostgres, startEphemeralPostgres } from '../../src/dev/ephemeral.ts';
import { type Harness, startHarness } from './harness.ts';

export interface ShopPitr {
  h: Harness;
  /** The cluster `shop` is on, of this test's own: a base backup copies a whole cluster. */
  pg: EphemeralPostgres;
  /** A directory of the test's own; the config file is in it. */
  work: string;
  slot: string;
  stop(): Promise<void>;
}

/** The whole bot (harness.ts) with one target, `shop`, whose WAL it streams (`pitr`) from a cluster of its own. */
export async function startShopPitr(o: { pgUrl: string; redisUrl: string; tag: string }): Promise<ShopPitr> {
  const pg = await startEphemeralPostgres();
  const work = await mkdtemp(join(tmpdir(), `pgbb-e2e-${o.tag}-`));
  const slot = `pgbb_shop_${randomBytes(3).toString('hex')}`;
  const cfg = join(work, 'pg-backup-bot.yml');
  await writeFile(
    cfg,
    [
      'encryption: age',
      'targets:',
      '  - name: shop',
      '    urlEnv: SHOP_URL',
      '    environment: production',
      `    pitr: { urlEnv: SHOP_URL, slot: ${slot} }`,
      '',
    ].join('\n'),
  );
  const h = await startHarness({ pgUrl: o.pgUrl, redisUrl: o.redisUrl, env: { BOT_CONFIG: cfg, SHOP_URL: pg.url } });
  return {
    h,
    pg,
    work,
    slot,
    async stop() {
      await h.stop();
      await pg.stop();
      await rm(work, { recursive: true, force: true });
    },
  };
}
