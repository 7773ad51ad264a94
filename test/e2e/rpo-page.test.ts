import { randomBytes } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { childProcesses, withClient } from '../support/postgres-helpers.ts';
import { slash, startHarness, type Harness } from './harness.ts';

let h: Harness;
let cfg: string;
const slot = `pgbb_rpo_${randomBytes(4).toString('hex')}`;
const table = `pgbb_rpo_writes_${randomBytes(4).toString('hex')}`;

beforeAll(async () => {
  cfg = join(tmpdir(), `pgbb-rpo-${process.pid}-${Date.now()}.yml`);
  await writeFile(
    cfg,
    `encryption: age\ntargets:\n  - name: shop\n    urlEnv: SHOP_URL\n    environment: production\n    pitr: { urlEnv: SHOP_REPLICATION_URL, slot: ${slot}, rpoSeconds: 10 }\n`,
  );
  h = await startHarness({
    pgUrl: inject('pgUrl'),
    redisUrl: inject('redisUrl'),
    env: { BOT_CONFIG: cfg, SHOP_URL: inject('pgUrl'), SHOP_REPLICATION_URL: inject('pgUrl') },
  });
  await withClient(inject('pgUrl'), (c) => c.query(`CREATE TABLE ${table} (n int)`));
});

afterAll(async () => {
  await h?.stop();
  await withClient(inject('pgUrl'), async (c) => {
    await c.query(`DROP TABLE IF EXISTS ${table}`);
    await c.query('SELECT pg_drop_replication_slot($1) FROM pg_replication_slots WHERE slot_name = $1', [slot]);
  }).catch(() => undefined);
  await rm(cfg, { force: true });
});

async function until<T>(what: string, f: () => Promise<T | undefined> | T | undefined, timeoutMs = 60_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const events = (action: string) => h.pd.events.filter((e) => e.dedup_key === 'pg-backup-bot/shop/rpo' && e.event_action === action);

describe('an RPO over its objective, as the bot runs it', () => {
  it('pages pg-backup-bot/shop/rpo within seconds while WAL stops reaching the archive, exports it, and resolves when it catches up', {
    timeout: 180_000,
  }, async () => {
    await until('RPO measured', async () =>
      (await slash(h, '/backup', 'health shop')).text.match(/:white_check_mark: RPO: \d+ s \(objective 10 s\)/) ? true : undefined,
    );
    const receiver = await until('the receiver', async () =>
      (await childProcesses()).find((p) => p.cmdline.includes('pg_receivewal') && p.cmdline.includes(`--slot=${slot}`) && !p.cmdline.includes('--create-slot')),
    );
    // WAL stops reaching the archive (the receiver frozen) while committed writes go on.
    process.kill(receiver.pid, 'SIGSTOP');
    let writing = true;
    const writes = (async () => {
      while (writing) {
        await withClient(inject('pgUrl'), (c) => c.query(`INSERT INTO ${table} VALUES (1)`));
        await new Promise((r) => setTimeout(r, 300));
      }
    })();
    try {
      const [page] = await until('the RPO page', () => (events('trigger').length ? events('trigger') : undefined));
      expect(page?.payload?.severity).toBe('critical');
      expect(page?.payload?.summary).toMatch(/^The RPO of shop is \d+ s, over its objective 10 s: that much committed data would be lost/);
      const posted = [...h.slack.messages.values()].map((m) => m.text).join('\n');
      expect(posted).toMatch(/shop: RPO not within its objective — \d+ s \(objective 10 s\): the server is at /);
      const metrics = await (await fetch(`${h.metricsUrl}/metrics`)).text();
      const rpo = Number(/^pgbb_wal_rpo_seconds\{target="shop"\} (\S+)$/m.exec(metrics)?.[1]);
      expect(rpo).toBeGreaterThan(10);
      expect(metrics).toMatch(/^pgbb_wal_rpo_objective_seconds\{target="shop"\} 10$/m);
      expect(metrics).toMatch(/^pgbb_condition_failing\{target="shop",condition="rpo"\} 1$/m);
    } finally {
      writing = false;
      await writes;
      process.kill(receiver.pid, 'SIGCONT');
    }
    await until('the page resolved', () => (events('resolve').length ? true : undefined));
    expect((await slash(h, '/backup', 'health shop')).text).toMatch(/:white_check_mark: RPO: \d+ s \(objective 10 s\)/);
  });
});
