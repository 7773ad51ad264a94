import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { CLOSED_PORT } from '../support/closed-port.ts';
import { channelMessage, jobIdOf, slash, startHarness, type Harness } from './harness.ts';

/**
 * A restore test that cannot run (its scratch server refuses connections; likewise a role without CREATEDB). QA: it
 * paged critical, but `/backup health`, the health job and /metrics said "no restore test recorded": the Prometheus
 * rules for a failing restore test could never fire while that page was open. It is recorded now, as not run.
 */
describe('a restore test that could not run', () => {
  let h: Harness;

  beforeAll(async () => {
    h = await startHarness({
      pgUrl: inject('pgUrl'),
      redisUrl: inject('redisUrl'),
      env: { RESTORE_TEST_DATABASE_URL: `postgres://pgbb@127.0.0.1:${CLOSED_PORT}/postgres` },
    });
  });
  afterAll(async () => h?.stop());

  it('is what health, history and the checks see, not "none recorded", and it never marks the backup bad', async () => {
    const backup = jobIdOf((await slash(h, '/backup', 'now')).text) ?? '';
    await channelMessage(h, backup, /succeeded/);
    const test = jobIdOf((await slash(h, '/restore-test', 'latest')).text) ?? '';
    const verdict = await channelMessage(h, test, /could not run/);
    await h.pd.waitFor((e) => e.event_action === 'trigger' && e.dedup_key === 'pg-backup-bot/shop/restore-test', 30_000);
    const [record] = await h.service.deps.storage.listRecords('restore-test', 'shop');
    expect(record).toMatchObject({ kind: 'restore-test', passed: null, jobId: test });
    expect(record?.problems[0]).toMatch(/^could not run: .*connection refused/i);
    const health = (await slash(h, '/backup', 'health shop')).text;
    expect(health).toMatch(/:rotating_light: last restore test failed: restore test of shop-\S+ at .* failed: could not run: Could not connect/);
    expect(health).not.toContain('no restore test recorded');
    // The backup itself is not the cause: it is still a good one (a test that ran and failed would make it not).
    expect((await slash(h, '/backup', 'list shop')).text).not.toMatch(/failed its (latest )?restore test/);
    expect(verdict.text).toMatch(/could not run/);
  }, 120_000);
});
