import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { Config } from '../../src/config.ts';
import { createHealthState } from '../../src/health/index.ts';
import { outboxKey, pageStateKey } from '../../src/notifications/escalation.ts';
import type { Storage } from '../../src/storage/index.ts';
import { healthProcessor, type HealthWorkerDeps } from '../../src/workers/health-worker.ts';
import { CHANNEL_ID, startWorkerKit, type WorkerKit } from './worker-kit.ts';

/**
 * The health processor's error paths (health-worker.ts → target-health.ts), as the on-call engineer meets them: the
 * job's outcome, the channel posts, the pages PagerDuty holds, and what the health state remembers. The condition
 * driven here is `disk` (a warning that pages): the storage's free space is set by the test; every target is new,
 * so its `stale` is the quiet "first backup not due yet" and says nothing.
 */

let kit: WorkerKit;

beforeAll(async () => {
  kit = await startWorkerKit({ pgUrl: inject('pgUrl'), redisUrl: inject('redisUrl') });
});

afterAll(async () => {
  await kit?.stop();
});

const TOTAL = 100 * 1024 ** 3;

/**
 * The kit's storage with a disk whose free share the test sets (under 20 % is `disk` failing), and targets whose
 * listing fails as an unreadable mount would.
 */
function testStorage(disk: { free: number }, failList: ReadonlySet<string> = new Set()): Storage {
  const inner = kit.storage;
  return {
    describe: () => inner.describe(),
    beginBackup: (t, id, owner) => inner.beginBackup(t, id, owner),
    createArtifactWriter: (t, id, f) => inner.createArtifactWriter(t, id, f),
    writeManifest: (m) => inner.writeManifest(m),
    discardUnfinished: (t, id) => inner.discardUnfinished(t, id),
    readManifest: (t, id) => inner.readManifest(t, id),
    async list(target) {
      if (target !== undefined && failList.has(target)) {
        throw Object.assign(new Error(`EIO: i/o error, scandir '${inner.root}/${target}'`), { code: 'EIO', errno: -5 });
      }
      return inner.list(target);
    },
    openArtifact: (t, id, f) => inner.openArtifact(t, id, f),
    deleteBackup: (t, id) => inner.deleteBackup(t, id),
    writeRecord: (r) => inner.writeRecord(r),
    listRecords: (k, t) => inner.listRecords(k, t),
    freeSpace: async () => ({ totalBytes: TOTAL, freeBytes: Math.round(TOTAL * disk.free) }),
  };
}

/** The kit's config with these targets (each the kit's `shop` renamed): health state and pages are per target. */
function configWith(...names: string[]): Config {
  const shop = kit.config.targets[0];
  if (!shop) throw new Error('the kit has no target');
  return { ...kit.config, targets: names.map((name) => ({ ...shop, name })) };
}

const deps = (over: Partial<HealthWorkerDeps> & Pick<HealthWorkerDeps, 'config' | 'storage'>): HealthWorkerDeps => ({
  runs: kit.runs,
  state: createHealthState(kit.redis, kit.prefix),
  backupQueue: kit.queues.backup,
  notifier: kit.notifier,
  escalation: kit.escalation,
  log: kit.log,
  ...over,
});

const diskKey = (target: string) => `pg-backup-bot/${target}/disk`;
/** Top-level channel posts about a target's disk, oldest first. */
const diskPosts = (target: string) =>
  [...kit.slack.messages.values()].filter((m) => !m.thread_ts && m.channel === CHANNEL_ID && (m.text ?? '').startsWith(`${target}: backup disk filling up`));
const contextOf = (m: { blocks?: unknown } | undefined) => JSON.stringify(m?.blocks ?? null);
const pageOpen = (target: string) => kit.redis.get(pageStateKey(kit.prefix, diskKey(target)));

/** Polls until `probe` holds (a wait, not an assertion: the assertions follow it). */
async function until(what: string, probe: () => Promise<boolean> | boolean, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > end) throw new Error(`${what} did not happen within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('healthProcessor', () => {
  describe('when a condition fails, then passes', () => {
    it('pages once and posts once while it fails, then resolves once and says so once', async () => {
      const disk = { free: 0.05 };
      const processor = healthProcessor(deps({ config: configWith('h-flap'), storage: testStorage(disk) }));
      const failing = [await kit.runJob(processor, {}), await kit.runJob(processor, {})];
      for (const job of failing) expect((job.returnvalue as { failing: string[] }).failing).toContain('h-flap/disk');
      disk.free = 0.5;
      const passing = [await kit.runJob(processor, {}), await kit.runJob(processor, {})];
      for (const job of passing) expect((job.returnvalue as { failing: string[] }).failing).not.toContain('h-flap/disk');

      // The resolve leaves the outbox after the trigger: once it is in, everything for this key is.
      await kit.pd.waitFor((e) => e.dedup_key === diskKey('h-flap') && e.event_action === 'resolve', 30_000);
      const events = kit.pd.events.filter((e) => e.dedup_key === diskKey('h-flap'));
      expect(events.map((e) => e.event_action)).toEqual(['trigger', 'resolve']);
      expect(events[0]?.payload?.severity).toBe('warning');
      expect(events[0]?.payload?.summary).toBe('Backup disk of h-flap is nearly full: 5 % free (5.0 GB of 100 GB), limit 20 %');
      expect(kit.pd.alerts.get(diskKey('h-flap'))?.status).toBe('resolved');

      const posts = diskPosts('h-flap');
      expect(posts.map((m) => m.text)).toEqual([
        'h-flap: backup disk filling up — 5 % free (5.0 GB of 100 GB), limit 20 %',
        'h-flap: backup disk filling up cleared',
      ]);
      expect(contextOf(posts[0])).toContain('PagerDuty paged (warning, dedup key pg-backup-bot/h-flap/disk)');
      expect(contextOf(posts[1])).toContain('PagerDuty page resolved (pg-backup-bot/h-flap/disk)');
      expect(await pageOpen('h-flap')).toBeNull();
    });
  });

  describe("when one target's storage fails to list", () => {
    // A target whose check cannot run must not leave the others unchecked (their pages would never come): each
    // other target is checked, and the run fails afterwards, naming the one that could not be.
    it('the targets after it are still checked, paged and posted; the run fails naming it', async () => {
      const storage = testStorage({ free: 0.05 }, new Set(['h-list-a']));
      const job = await kit.runJob(healthProcessor(deps({ config: configWith('h-list-a', 'h-list-b'), storage })), {});
      expect(await job.getState()).toBe('failed');
      expect(job.failedReason).toMatch(/^health checks could not run for h-list-a: /);
      expect(await createHealthState(kit.redis, kit.prefix).read('h-list-a')).toEqual({});
      expect(diskPosts('h-list-a')).toEqual([]);
      expect(diskPosts('h-list-b').map((m) => m.text)).toEqual(['h-list-b: backup disk filling up — 5 % free (5.0 GB of 100 GB), limit 20 %']);
      await kit.pd.waitFor((e) => e.dedup_key === diskKey('h-list-b') && e.event_action === 'trigger', 30_000);
    });

    it('the targets before it are checked, paged and posted; the run still fails', async () => {
      const storage = testStorage({ free: 0.05 }, new Set(['h-list-d']));
      const job = await kit.runJob(healthProcessor(deps({ config: configWith('h-list-c', 'h-list-d'), storage })), {});
      expect(job.failedReason).toMatch(/^health checks could not run for h-list-d: /);
      expect(diskPosts('h-list-c').map((m) => m.text)).toEqual(['h-list-c: backup disk filling up — 5 % free (5.0 GB of 100 GB), limit 20 %']);
      await kit.pd.waitFor((e) => e.dedup_key === diskKey('h-list-c') && e.event_action === 'trigger', 30_000);
      expect(await createHealthState(kit.redis, kit.prefix).read('h-list-d')).toEqual({});
      expect(diskPosts('h-list-d')).toEqual([]);
    });
  });

  describe('when Redis refuses the health state write (an ACL user without write permission)', () => {
    it('the run fails with Redis’s refusal before paging or posting; the next run with a writable Redis pages once', async () => {
      const user = `pgbb-ro-${randomBytes(4).toString('hex')}`;
      const password = randomBytes(12).toString('hex');
      await kit.redis.acl('SETUSER', user, 'on', `>${password}`, '~*', '&*', '+@all', '-@write');
      const readOnly = new Redis(inject('redisUrl'), { username: user, password, maxRetriesPerRequest: null });
      try {
        const storage = testStorage({ free: 0.05 });
        const config = configWith('h-state');
        const refused = await kit.runJob(healthProcessor(deps({ config, storage, state: createHealthState(readOnly, kit.prefix) })), {});
        expect(await refused.getState()).toBe('failed');
        expect(refused.failedReason).toMatch(/^health checks could not run for h-state: /);
        expect(await createHealthState(kit.redis, kit.prefix).read('h-state')).toEqual({});
        expect(await pageOpen('h-state')).toBeNull();
        expect(diskPosts('h-state')).toEqual([]);

        // Nothing was remembered, so the episode is not lost: the next run that can write it pages and posts.
        const next = await kit.runJob(healthProcessor(deps({ config, storage })), {});
        expect((next.returnvalue as { failing: string[] }).failing).toContain('h-state/disk');
        await kit.pd.waitFor((e) => e.dedup_key === diskKey('h-state') && e.event_action === 'trigger', 30_000);
        expect(diskPosts('h-state')).toHaveLength(1);
      } finally {
        readOnly.disconnect();
        await kit.redis.acl('DELUSER', user);
      }
    });
  });

  describe('when Slack refuses the post (channel_not_found)', () => {
    // Behaviour: the page goes out and the state is written; the refused post is logged and not tried again at the
    // next run (the condition did not change), so the channel never hears of this episode.
    it('the run completes and pages; the post is logged as failed and not tried again at the next run', async () => {
      const storage = testStorage({ free: 0.05 });
      const processor = healthProcessor(deps({ config: configWith('h-slack'), storage, notifier: kit.notifierFor('#deleted') }));
      const job = await kit.runJob(processor, {});
      expect(await job.getState()).toBe('completed');
      expect((job.returnvalue as { failing: string[] }).failing).toContain('h-slack/disk');
      await kit.pd.waitFor((e) => e.dedup_key === diskKey('h-slack') && e.event_action === 'trigger', 30_000);
      const refused = () => kit.slack.calls.filter((c) => c.body.channel === '#deleted' && JSON.stringify(c.body).includes('h-slack'));
      expect(refused().map((c) => c.response.error)).toEqual(['channel_not_found']);
      expect(kit.logs.some((l) => l.includes('could not post to the channel') && l.includes('channel_not_found'))).toBe(true);

      const again = await kit.runJob(processor, {});
      expect(await again.getState()).toBe('completed');
      expect(refused()).toHaveLength(1);
      expect(kit.pd.events.filter((e) => e.dedup_key === diskKey('h-slack')).map((e) => e.event_action)).toEqual(['trigger']);
    });
  });

  describe('when PagerDuty answers 500', () => {
    it('the run completes and says paged; the delivery retries and PagerDuty gets the page once', async () => {
      const rejectedBefore = kit.pd.rejected.length;
      kit.pd.failNext(1, 500);
      const job = await kit.runJob(healthProcessor(deps({ config: configWith('h-pd500'), storage: testStorage({ free: 0.05 }) })), {});
      expect(await job.getState()).toBe('completed');
      expect(contextOf(diskPosts('h-pd500')[0])).toContain('PagerDuty paged (warning, dedup key pg-backup-bot/h-pd500/disk)');
      await kit.pd.waitFor((e) => e.dedup_key === diskKey('h-pd500') && e.event_action === 'trigger', 30_000);
      expect(kit.pd.rejected.slice(rejectedBefore).map((r) => r.status)).toEqual([500]);
      expect(kit.pd.alerts.get(diskKey('h-pd500'))?.actions).toEqual(['trigger']);
    });
  });

  describe('when PagerDuty refuses the page (400)', () => {
    // A 400 is dropped by the delivery (retrying cannot heal it). The channel, told "PagerDuty paged", is told that
    // nobody was; the page's state is forgotten, so nothing claims to resolve it, and the next episode pages again.
    it('the channel hears that nobody was paged; later runs of the same episode stay quiet', async () => {
      const rejectedBefore = kit.pd.rejected.length;
      kit.pd.failNext(1, 400);
      const processor = healthProcessor(deps({ config: configWith('h-pd400'), storage: testStorage({ free: 0.05 }) }));
      const job = await kit.runJob(processor, {});
      expect(await job.getState()).toBe('completed');
      expect(contextOf(diskPosts('h-pd400')[0])).toContain('PagerDuty paged (warning, dedup key pg-backup-bot/h-pd400/disk)');
      await until('the PagerDuty outbox of h-pd400 drained', async () => (await kit.redis.llen(outboxKey(kit.prefix, diskKey('h-pd400')))) === 0);
      await until('the refusal posted', () =>
        [...kit.slack.messages.values()].some((m) =>
          m.text?.startsWith(`:rotating_light: PagerDuty refused a page: nobody was paged for \`${diskKey('h-pd400')}\``),
        ),
      );
      expect(kit.pd.rejected.slice(rejectedBefore).map((r) => r.status)).toEqual([400]);
      expect(kit.pd.alerts.has(diskKey('h-pd400'))).toBe(false);
      expect(await pageOpen('h-pd400')).toBeNull();

      const requests = kit.pd.requests.length;
      const again = await kit.runJob(processor, {});
      expect((again.returnvalue as { failing: string[] }).failing).toContain('h-pd400/disk');
      expect(await kit.redis.llen(outboxKey(kit.prefix, diskKey('h-pd400')))).toBe(0);
      expect(kit.pd.requests.length).toBe(requests);
      expect(diskPosts('h-pd400')).toHaveLength(1);
    });
  });
});
