import { randomBytes } from 'node:crypto';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import type { Config } from '../../src/config.ts';
import { createHealthState } from '../../src/health/index.ts';
import { walLeaseKey } from '../../src/jobs/wal-lease.ts';
import { walStateKey } from '../../src/jobs/wal-state.ts';
import { outboxKey, pageStateKey } from '../../src/notifications/escalation.ts';
import type { Storage } from '../../src/storage/index.ts';
import { healthProcessor, type HealthWorkerDeps } from '../../src/workers/health-worker.ts';
import { report } from '../../src/workers/health-report.ts';
import { createTargetEvaluator, reevaluateAfterJobs } from '../../src/workers/target-health.ts';
import { CHANNEL_ID, startWorkerKit, type WorkerKit } from './worker-kit.ts';

/**
 * The health processor's error paths (health-worker.ts → target-health.ts), as the on-call engineer meets them: the
 * job's outcome, the channel posts, the pages PagerDuty holds, and what the health state remembers. The condition
 * driven here is the backup disk (a warning that pages, once for every target writing to it: a target's own `disk` is
 * quiet): the storage's free space is set by the test, and each test names its storage, so each has its own disk's
 * state and page; every target is new, so its `stale` is the quiet "first backup not due yet" and says nothing.
 */

let kit: WorkerKit;

beforeAll(async () => {
  kit = await startWorkerKit({ pgUrl: inject('pgUrl'), redisUrl: inject('redisUrl') });
});

afterAll(async () => {
  await kit?.stop();
});

// Each test's disk is a storage of its own (testStorage), where a deployment has one: a judgment clears the failures
// of the disks judged before it (backups moved), so each test starts with none judged.
beforeEach(async () => {
  await kit.redis.del(`${kit.prefix}:health-judged:disk`);
});

const TOTAL = 100 * 1024 ** 3;

/**
 * The kit's storage with a disk whose free share the test sets (under 20 % is `disk` failing), and targets whose
 * listing fails as an unreadable mount would; `name` makes it another disk than the other tests' (its own state and
 * page).
 */
function testStorage(name: string, disk: { free: number }, failList: ReadonlySet<string> = new Set()): Storage {
  const inner = kit.storage;
  return {
    describe: () => `${inner.describe()}/${name}`,
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

/** The disk of testStorage(name): where its condition is remembered, paged and posted. */
const where = (name: string) => `${kit.storage.describe()}/${name}`;
const diskKey = (name: string) => `pg-backup-bot/${where(name)}/disk`;
/** Top-level channel posts about the disk (or about a target's own disk: there should be none), oldest first. */
const diskPosts = (subject: string) =>
  [...kit.slack.messages.values()].filter(
    (m) => !m.thread_ts && m.channel === CHANNEL_ID && (m.text ?? '').startsWith(`${subject}: backup disk short of space`),
  );
const contextOf = (m: { blocks?: unknown } | undefined) => JSON.stringify(m?.blocks ?? null);
const pageOpen = (name: string) => kit.redis.get(pageStateKey(kit.prefix, diskKey(name)));
const FULL = '5 % free (5.0 GB of 100 GB), limit 20 %';
/** What the disk's condition says clears it, when room is what it lacks. */
const TODO = '; to clear it: free space, or delete old backups (`pg-backup-bot retention --dry-run` lists what retention deletes next)';

/** Polls until `probe` holds (a wait, not an assertion: the assertions follow it). */
async function until(what: string, probe: () => Promise<boolean> | boolean, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > end) throw new Error(`${what} did not happen within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('healthProcessor', () => {
  describe('when the disk fills up under three targets, then has room again', () => {
    it('pages once and posts once for the disk while it fails, never per target, then resolves once and says so once', async () => {
      const disk = { free: 0.05 };
      const targets = ['h-flap-a', 'h-flap-b', 'h-flap-c'];
      const processor = healthProcessor(deps({ config: configWith(...targets), storage: testStorage('flap', disk) }));
      const failing = [await kit.runJob(processor, {}), await kit.runJob(processor, {})];
      for (const job of failing) {
        expect((job.returnvalue as { failing: string[] }).failing).toEqual(
          expect.arrayContaining([`${where('flap')}/disk`, ...targets.map((t) => `${t}/disk`)]),
        );
      }
      // Each target's own disk is remembered as failing, quietly: /backup health shows it, the disk's page says it.
      for (const t of targets) expect((await createHealthState(kit.redis, kit.prefix).read(t)).disk).toMatchObject({ status: 'failing', quiet: true });
      disk.free = 0.5;
      const passing = [await kit.runJob(processor, {}), await kit.runJob(processor, {})];
      for (const job of passing) expect((job.returnvalue as { failing: string[] }).failing).not.toContain(`${where('flap')}/disk`);

      // The resolve leaves the outbox after the trigger: once it is in, everything for this key is.
      await kit.pd.waitFor((e) => e.dedup_key === diskKey('flap') && e.event_action === 'resolve', 30_000);
      const events = kit.pd.events.filter((e) => e.dedup_key === diskKey('flap'));
      expect(events.map((e) => e.event_action)).toEqual(['trigger', 'resolve']);
      expect(events[0]?.payload?.severity).toBe('warning');
      expect(events[0]?.payload?.summary).toBe(`Backup disk ${where('flap')} is nearly full: ${FULL}${TODO}`);
      expect(kit.pd.alerts.get(diskKey('flap'))?.status).toBe('resolved');
      for (const t of targets) expect(kit.pd.events.filter((e) => e.dedup_key === `pg-backup-bot/${t}/disk`)).toEqual([]);

      const posts = diskPosts(where('flap'));
      expect(posts.map((m) => m.text)).toEqual([
        `${where('flap')}: backup disk short of space — ${FULL}; 3 targets write to it${TODO}`,
        `${where('flap')}: backup disk short of space cleared`,
      ]);
      expect(contextOf(posts[0])).toContain(`PagerDuty page queued (warning, dedup key ${diskKey('flap')})`);
      expect(contextOf(posts[1])).toContain(`PagerDuty page resolved (${diskKey('flap')})`);
      for (const t of targets) expect(diskPosts(t)).toEqual([]);
      expect(await pageOpen('flap')).toBeNull();
    });
  });

  describe('when the disk goes on filling while it fails', () => {
    it('posts again under half the limit and under a quarter, once each, never back while it fails; the one page stays open', async () => {
      const disk = { free: 0.15 };
      const processor = healthProcessor(deps({ config: configWith('h-fill-a'), storage: testStorage('fill', disk) }));
      // 15 % (fails), 12 %, 8 % (under half), 12 % and 9 % (a retention run and a backup: not shallower), 3 % (under a
      // quarter), then room.
      for (const free of [0.15, 0.12, 0.08, 0.12, 0.09, 0.03, 0.5]) {
        disk.free = free;
        expect(await (await kit.runJob(processor, {})).getState()).toBe('completed');
      }
      await kit.pd.waitFor((e) => e.dedup_key === diskKey('fill') && e.event_action === 'resolve', 30_000);
      // One page, updated as the disk went under half and under a quarter of the limit (each a deeper episode), resolved once.
      expect(kit.pd.events.filter((e) => e.dedup_key === diskKey('fill')).map((e) => e.event_action)).toEqual(['trigger', 'trigger', 'trigger', 'resolve']);
      const posts = diskPosts(where('fill'));
      expect(posts.map((m) => m.text)).toEqual([
        expect.stringMatching(/ — 15 % free \(15\.0 GB of 100 GB\), limit 20 %/),
        expect.stringMatching(/ — 8 % free \(8\.0 GB of 100 GB\), limit 20 %/),
        expect.stringMatching(/ — 3 % free \(3\.0 GB of 100 GB\), limit 20 %/),
        `${where('fill')}: backup disk short of space cleared`,
      ]);
      expect(contextOf(posts[1])).toContain(`PagerDuty's open alert updated (warning, dedup key ${diskKey('fill')})`);
    });
  });

  describe('when a job ends after room was made', () => {
    // Issue 11's rule, for the disk too: a page resolves seconds after the job that fixed it, not at the next health
    // run (up to 15 minutes later). The job's own target is checked, then the disk, from every target's last check.
    it('the disk is judged again after the job, and its page resolves at once', async () => {
      const disk = { free: 0.05 };
      const d = deps({ config: configWith('h-after-a', 'h-after-b'), storage: testStorage('after', disk) });
      const evaluate = createTargetEvaluator(d);
      expect(await (await kit.runJob(healthProcessor({ ...d, evaluate }), {})).getState()).toBe('completed');
      await kit.pd.waitFor((e) => e.dedup_key === diskKey('after') && e.event_action === 'trigger', 30_000);

      disk.free = 0.5;
      const queue = new Queue(`after-${randomBytes(4).toString('hex')}`, { connection: kit.redis, prefix: kit.prefix });
      const worker = new Worker(queue.name, async () => 'done', { connection: kit.redis, prefix: kit.prefix });
      try {
        reevaluateAfterJobs([worker], evaluate, kit.log);
        await queue.add('job', { target: 'h-after-a' });
        await kit.pd.waitFor((e) => e.dedup_key === diskKey('after') && e.event_action === 'resolve', 10_000);
        expect(diskPosts(where('after')).map((m) => m.text)).toEqual([
          `${where('after')}: backup disk short of space — ${FULL}; 2 targets write to it${TODO}`,
          `${where('after')}: backup disk short of space cleared`,
        ]);
      } finally {
        await worker.close();
        await queue.close();
      }
    });
  });

  describe('on two worker hosts', () => {
    // Each host judges the disk from what Redis remembers of every target, not from its own memory: a host whose own
    // last look saw the disk full does not reopen a page another host resolved (second reader, on a first version).
    it('a host that saw the disk full does not reopen the page the other resolved', async () => {
      const disk = { free: 0.05 };
      const config = configWith('h-two-a', 'h-two-b');
      const hostA = createTargetEvaluator(deps({ config, storage: testStorage('two', disk) }));
      const hostB = createTargetEvaluator(deps({ config, storage: testStorage('two', disk) }));
      expect(await (await kit.runJob(healthProcessor({ ...deps({ config, storage: testStorage('two', disk) }), evaluate: hostB }), {})).getState()).toBe(
        'completed',
      );
      await kit.pd.waitFor((e) => e.dedup_key === diskKey('two') && e.event_action === 'trigger', 30_000);
      disk.free = 0.5;
      expect(await (await kit.runJob(healthProcessor({ ...deps({ config, storage: testStorage('two', disk) }), evaluate: hostA }), {})).getState()).toBe(
        'completed',
      );
      await kit.pd.waitFor((e) => e.dedup_key === diskKey('two') && e.event_action === 'resolve', 30_000);
      // Host B, after a job of h-two-a: judged again from Redis, the disk has room.
      expect((await hostB.backupDiskAfter([], kit.log))?.status).toBeUndefined();
      expect((await hostB.backupDisk(kit.log)).status).toBe('ok');
      await new Promise((r) => setTimeout(r, 300));
      expect(kit.pd.events.filter((e) => e.dedup_key === diskKey('two')).map((e) => e.event_action)).toEqual(['trigger', 'resolve']);
      expect(diskPosts(where('two'))).toHaveLength(2);
    });
  });

  describe('after an upgrade from per-target disk pages', () => {
    it('a target’s open disk page is resolved without a post; the disk pages once in its place', async () => {
      const target = 'h-upgrade';
      const state = createHealthState(kit.redis, kit.prefix);
      // What the version before left: the target's own disk failing, loud, and its page open.
      const loud = { condition: 'disk' as const, status: 'failing' as const, severity: 'warning' as const, summary: 's', evidence: 'e' };
      await state.apply(target, [loud], new Date());
      await kit.escalation.failed(target, 'disk', { summary: `Backup disk of ${target} is nearly full`, severity: 'warning', details: {} });
      await kit.pd.waitFor((e) => e.dedup_key === `pg-backup-bot/${target}/disk` && e.event_action === 'trigger', 30_000);
      await kit.runJob(healthProcessor(deps({ config: configWith(target), storage: testStorage('upgrade', { free: 0.05 }) })), {});
      await kit.pd.waitFor((e) => e.dedup_key === `pg-backup-bot/${target}/disk` && e.event_action === 'resolve', 30_000);
      await kit.pd.waitFor((e) => e.dedup_key === diskKey('upgrade') && e.event_action === 'trigger', 30_000);
      expect(diskPosts(target)).toEqual([]);
      expect(diskPosts(where('upgrade'))).toHaveLength(1);
    });
  });

  describe('a condition other than the disk going quiet while it fails', () => {
    // Only a target's disk hands its page over; a base backup paged as failed and then judged quiet (the worker that
    // ran it has the word) keeps its page open (second reader: a first version resolved every loud → quiet page).
    it('keeps its page open', async () => {
      const target = 'h-quiet';
      const state = createHealthState(kit.redis, kit.prefix);
      const loud = { condition: 'base-backup' as const, status: 'failing' as const, severity: 'error' as const, summary: 'no base backup', evidence: 'none' };
      await state.apply(target, [loud], new Date());
      await kit.escalation.failed(target, 'base-backup', { summary: 'no base backup of h-quiet', severity: 'error', details: {} });
      await kit.pd.waitFor((e) => e.dedup_key === `pg-backup-bot/${target}/base-backup` && e.event_action === 'trigger', 30_000);
      const [applied] = await state.apply(target, [{ ...loud, quiet: true }], new Date());
      expect(applied?.changed).toBe(true);
      if (applied) await report({ notifier: kit.notifier, escalation: kit.escalation }, target, applied, kit.log);
      await new Promise((r) => setTimeout(r, 500));
      expect(kit.pd.events.filter((e) => e.dedup_key === `pg-backup-bot/${target}/base-backup`).map((e) => e.event_action)).toEqual(['trigger']);
      expect(await kit.redis.get(pageStateKey(kit.prefix, `pg-backup-bot/${target}/base-backup`))).toBe('triggered');
    });
  });

  describe('when backups move to another disk', () => {
    it('the old disk’s failure is cleared once no worker has judged it for 6 hours, not at once (two mount points)', async () => {
      const config = configWith('h-move');
      const t0 = Date.now();
      const at = (hours: number) => () => new Date(t0 + hours * 3600_000);
      await kit.runJob(healthProcessor(deps({ config, storage: testStorage('move-old', { free: 0.05 }), now: at(0) })), {});
      await kit.pd.waitFor((e) => e.dedup_key === diskKey('move-old') && e.event_action === 'trigger', 30_000);
      // An hour later the other path is judged: the old one may be the same disk under another mount point, kept.
      await kit.runJob(healthProcessor(deps({ config, storage: testStorage('move-new', { free: 0.5 }), now: at(1) })), {});
      await new Promise((r) => setTimeout(r, 300));
      expect(kit.pd.events.filter((e) => e.dedup_key === diskKey('move-old')).map((e) => e.event_action)).toEqual(['trigger']);
      // Seven hours after its last judgment, it is one backups are no longer written to.
      await kit.runJob(healthProcessor(deps({ config, storage: testStorage('move-new', { free: 0.5 }), now: at(7) })), {});
      await kit.pd.waitFor((e) => e.dedup_key === diskKey('move-old') && e.event_action === 'resolve', 30_000);
      expect(diskPosts(where('move-old')).map((m) => m.text)).toEqual([
        `${where('move-old')}: backup disk short of space — ${FULL}; 1 target writes to it${TODO}`,
        `${where('move-old')}: backup disk short of space cleared`,
      ]);
      expect(diskPosts(where('move-new'))).toEqual([]);
    });
  });

  describe("when one target's storage fails to list", () => {
    // A target whose check cannot run must not leave the others unchecked (their pages would never come): each
    // other target is checked, and the run fails afterwards, naming the one that could not be.
    it('the targets after it are still checked, and the disk paged and posted; the run fails naming it', async () => {
      const storage = testStorage('list-ab', { free: 0.05 }, new Set(['h-list-a']));
      const job = await kit.runJob(healthProcessor(deps({ config: configWith('h-list-a', 'h-list-b'), storage })), {});
      expect(await job.getState()).toBe('failed');
      expect(job.failedReason).toMatch(/^health checks could not run for h-list-a: /);
      // Only that it could not be checked, quietly at first: its last verdicts stand.
      expect(await createHealthState(kit.redis, kit.prefix).read('h-list-a')).toEqual({
        unchecked: expect.objectContaining({
          status: 'failing',
          quiet: true,
          evidence: expect.stringMatching(/^no condition could be judged since the check failed: /),
        }),
      });
      expect((await createHealthState(kit.redis, kit.prefix).read('h-list-b')).disk).toMatchObject({ status: 'failing', quiet: true });
      expect(diskPosts(where('list-ab')).map((m) => m.text)).toEqual([
        `${where('list-ab')}: backup disk short of space — ${FULL}; 2 targets write to it (1 not checked yet)${TODO}`,
      ]);
      await kit.pd.waitFor((e) => e.dedup_key === diskKey('list-ab') && e.event_action === 'trigger', 30_000);
    });

    it('the targets before it are checked, and the disk paged and posted; the run still fails', async () => {
      const storage = testStorage('list-cd', { free: 0.05 }, new Set(['h-list-d']));
      const job = await kit.runJob(healthProcessor(deps({ config: configWith('h-list-c', 'h-list-d'), storage })), {});
      expect(job.failedReason).toMatch(/^health checks could not run for h-list-d: /);
      expect((await createHealthState(kit.redis, kit.prefix).read('h-list-c')).disk).toMatchObject({ status: 'failing', quiet: true });
      expect(diskPosts(where('list-cd')).map((m) => m.text)).toEqual([
        `${where('list-cd')}: backup disk short of space — ${FULL}; 2 targets write to it (1 not checked yet)${TODO}`,
      ]);
      await kit.pd.waitFor((e) => e.dedup_key === diskKey('list-cd') && e.event_action === 'trigger', 30_000);
      expect(Object.keys(await createHealthState(kit.redis, kit.prefix).read('h-list-d'))).toEqual(['unchecked']);
    });

    it('pages once it could not be checked for 10 minutes, says so once, and resolves when a check runs again (QA: an S3 outage was silent)', async () => {
      const config = configWith('h-list-e');
      const t0 = Date.now();
      const at = (minutes: number) => () => new Date(t0 + minutes * 60_000);
      const broken = testStorage('list-e', { free: 0.5 }, new Set(['h-list-e']));
      // Paged for the storage it could not read, as every target of it would be (see the next test).
      const key = `pg-backup-bot/${where('list-e')}/unchecked`;
      const posts = () =>
        [...kit.slack.messages.values()].filter((m) => !m.thread_ts && (m.text ?? '').startsWith(`${where('list-e')}: health could not be checked`));
      for (const minutes of [0, 5]) await kit.runJob(healthProcessor(deps({ config, storage: broken, now: at(minutes) })), {});
      await new Promise((r) => setTimeout(r, 300));
      // A blip is not a page: nothing paged or posted within the 10 minutes.
      expect(kit.pd.events.filter((e) => e.dedup_key === key)).toEqual([]);
      expect(posts()).toEqual([]);
      for (const minutes of [11, 26]) await kit.runJob(healthProcessor(deps({ config, storage: broken, now: at(minutes) })), {});
      const trigger = await kit.pd.waitFor((e) => e.dedup_key === key && e.event_action === 'trigger', 30_000);
      expect(trigger.payload).toMatchObject({ severity: 'error', summary: `${where('list-e')}: h-list-e's health cannot be checked` });
      expect(posts().map((m) => m.text)).toEqual([
        expect.stringMatching(
          /: health could not be checked — h-list-e's health cannot be checked \(since \d{4}-\d\d-\d\d \d\d:\d\d UTC\): no condition could be judged since the check failed: .*EIO/,
        ),
      ]);
      expect(kit.pd.events.filter((e) => e.dedup_key === 'pg-backup-bot/h-list-e/unchecked')).toEqual([]);
      await kit.runJob(healthProcessor(deps({ config, storage: testStorage('list-e', { free: 0.5 }), now: at(31) })), {});
      await kit.pd.waitFor((e) => e.dedup_key === key && e.event_action === 'resolve', 30_000);
      expect(kit.pd.events.filter((e) => e.dedup_key === key).map((e) => e.event_action)).toEqual(['trigger', 'resolve']);
      expect([...kit.slack.messages.values()].some((m) => m.text === `${where('list-e')}: health could not be checked cleared`)).toBe(true);
    });

    it('five targets of one unreadable storage: one page and one post naming them, not five; resolved once all are checked again (earlier note: a page storm)', async () => {
      const names = ['h-storm-a', 'h-storm-b', 'h-storm-c', 'h-storm-d', 'h-storm-e'];
      const config = configWith(...names);
      const t0 = Date.now();
      const at = (minutes: number) => () => new Date(t0 + minutes * 60_000);
      const key = `pg-backup-bot/${where('storm')}/unchecked`;
      const posts = () => [...kit.slack.messages.values()].filter((m) => !m.thread_ts && (m.text ?? '').includes('h-storm-'));
      for (const minutes of [0, 11, 26])
        await kit.runJob(healthProcessor(deps({ config, storage: testStorage('storm', { free: 0.5 }, new Set(names)), now: at(minutes) })), {});
      await kit.pd.waitFor((e) => e.dedup_key === key && e.event_action === 'trigger', 30_000);
      await new Promise((r) => setTimeout(r, 300));
      expect(kit.pd.events.filter((e) => (e.dedup_key ?? '').includes('h-storm-'))).toEqual([]);
      expect(kit.pd.events.filter((e) => e.dedup_key === key).map((e) => e.event_action)).toEqual(['trigger']);
      expect(posts().map((m) => m.text)).toEqual([
        expect.stringMatching(
          /: health could not be checked — the health of 5 of 5 targets \(h-storm-a, h-storm-b, h-storm-c, h-storm-d and 1 more\) cannot be checked \(since [^)]+\): .*EIO/,
        ),
      ]);
      // One target readable again: still paged for the other four.
      await kit.runJob(healthProcessor(deps({ config, storage: testStorage('storm', { free: 0.5 }, new Set(names.slice(1))), now: at(31) })), {});
      expect((await createHealthState(kit.redis, kit.prefix).read(where('storm'))).unchecked).toMatchObject({
        status: 'failing',
        evidence: expect.stringMatching(/^the health of 4 of 5 targets \(h-storm-b, /),
      });
      await kit.runJob(healthProcessor(deps({ config, storage: testStorage('storm', { free: 0.5 }), now: at(36) })), {});
      await kit.pd.waitFor((e) => e.dedup_key === key && e.event_action === 'resolve', 30_000);
      expect(kit.pd.events.filter((e) => e.dedup_key === key).map((e) => e.event_action)).toEqual(['trigger', 'resolve']);
      expect(posts().map((m) => m.text)).toHaveLength(1);
      expect([...kit.slack.messages.values()].filter((m) => m.text === `${where('storm')}: health could not be checked cleared`)).toHaveLength(1);
    });

    it('an outage that fails another subset of targets each run stays one page until all are checked (second reader: it resolved mid-outage)', async () => {
      const names = ['h-flux-a', 'h-flux-b', 'h-flux-c'];
      const config = configWith(...names);
      const t0 = Date.now();
      const run = (minutes: number, failing: string[]) =>
        kit.runJob(
          healthProcessor(deps({ config, storage: testStorage('flux', { free: 0.5 }, new Set(failing)), now: () => new Date(t0 + minutes * 60_000) })),
          {},
        );
      const key = `pg-backup-bot/${where('flux')}/unchecked`;
      await run(0, ['h-flux-a']);
      await run(8, ['h-flux-a', 'h-flux-b']);
      await run(12, ['h-flux-b']);
      await kit.pd.waitFor((e) => e.dedup_key === key && e.event_action === 'trigger', 30_000);
      // The longest-failing target back, another failing since minute 20 only: still the same page, not resolved.
      await run(20, ['h-flux-c']);
      await run(26, ['h-flux-c']);
      await new Promise((r) => setTimeout(r, 300));
      expect(kit.pd.events.filter((e) => e.dedup_key === key).map((e) => e.event_action)).toEqual(['trigger']);
      expect((await createHealthState(kit.redis, kit.prefix).read(where('flux'))).unchecked).toMatchObject({
        status: 'failing',
        // Each start for what it is: c's own, and the storage's episode (second reader).
        evidence: expect.stringMatching(/^h-flux-c's health cannot be checked \(h-flux-c since .+ UTC, this storage's checks failing since .+ UTC\): /),
      });
      await run(31, []);
      await kit.pd.waitFor((e) => e.dedup_key === key && e.event_action === 'resolve', 30_000);
      expect(kit.pd.events.filter((e) => e.dedup_key === key).map((e) => e.event_action)).toEqual(['trigger', 'resolve']);
    });
  });

  describe("when a point-in-time-recovery target's storage cannot be read (an S3 outage with S3_MODE=primary)", () => {
    it('still judges its WAL stream and RPO from Redis: an RPO over its objective pages as such at once, the unchecked page waits', async () => {
      const shop = kit.config.targets[0];
      if (!shop) throw new Error('the kit has no target');
      const name = 'h-list-pitr';
      const config: Config = {
        ...kit.config,
        targets: [{ ...shop, name, pitr: { url: shop.url, slot: 'pgbb_h_list_pitr', walRetentionDays: 7, rpoSeconds: 3600 } }],
      };
      const now = new Date();
      const ago = (minutes: number) => new Date(now.getTime() - minutes * 60_000).toISOString();
      // The worker holding the lease says: streaming, measured a minute ago, WAL missing from the archive for 2 hours.
      await kit.redis.set(walLeaseKey(kit.prefix, name), 'w1 pid 1 abc', 'PX', 60_000);
      await kit.redis.hset(walStateKey(kit.prefix, name), {
        holder: 'w1 pid 1',
        receiver: 'up',
        since: ago(600),
        rpoObjectiveSeconds: '3600',
        rpoMeasuredAt: ago(1),
        rpoBehindSince: ago(120),
        currentLsn: '0/9000000',
        archivedLsn: '0/5000000',
      });
      const job = await kit.runJob(healthProcessor(deps({ config, storage: testStorage('list-pitr', { free: 0.5 }, new Set([name])), now: () => now })), {});
      expect(job.failedReason).toMatch(new RegExp(`^health checks could not run for ${name}: `));
      const state = await createHealthState(kit.redis, kit.prefix).read(name);
      expect(state.rpo).toMatchObject({
        status: 'failing',
        evidence: expect.stringMatching(/^2 h 0 min \(objective 1 h 0 min\): the server is at 0\/9000000, the archive holds up to 0\/5000000/),
      });
      expect(state['wal-stream']).toMatchObject({ status: 'ok' });
      expect(state.unchecked).toMatchObject({
        status: 'failing',
        quiet: true,
        evidence: expect.stringMatching(
          /^no condition read from storage could be judged since the check failed: .*EIO.*; the WAL stream and RPO are still judged from Redis; /,
        ),
      });
      const page = await kit.pd.waitFor((e) => e.dedup_key === `pg-backup-bot/${name}/rpo` && e.event_action === 'trigger', 30_000);
      expect(page.payload).toMatchObject({ severity: 'critical' });
      expect(kit.pd.events.filter((e) => e.dedup_key === `pg-backup-bot/${name}/unchecked`)).toEqual([]);
    });
  });

  describe('when Redis refuses the health state write (an ACL user without write permission)', () => {
    it('the run fails with Redis’s refusal before paging or posting; the next run with a writable Redis pages once', async () => {
      const user = `pgbb-ro-${randomBytes(4).toString('hex')}`;
      const password = randomBytes(12).toString('hex');
      await kit.redis.acl('SETUSER', user, 'on', `>${password}`, '~*', '&*', '+@all', '-@write');
      const readOnly = new Redis(inject('redisUrl'), { username: user, password, maxRetriesPerRequest: null });
      try {
        const storage = testStorage('state', { free: 0.05 });
        const config = configWith('h-state');
        const refused = await kit.runJob(healthProcessor(deps({ config, storage, state: createHealthState(readOnly, kit.prefix) })), {});
        expect(await refused.getState()).toBe('failed');
        expect(refused.failedReason).toMatch(/^health checks could not run for h-state: .*; the backup disk: /);
        expect(await createHealthState(kit.redis, kit.prefix).read('h-state')).toEqual({});
        expect(await createHealthState(kit.redis, kit.prefix).read(where('state'))).toEqual({});
        expect(await pageOpen('state')).toBeNull();
        expect(diskPosts(where('state'))).toEqual([]);

        // Nothing was remembered, so the episode is not lost: the next run that can write it pages and posts.
        const next = await kit.runJob(healthProcessor(deps({ config, storage })), {});
        expect((next.returnvalue as { failing: string[] }).failing).toEqual(expect.arrayContaining(['h-state/disk', `${where('state')}/disk`]));
        await kit.pd.waitFor((e) => e.dedup_key === diskKey('state') && e.event_action === 'trigger', 30_000);
        expect(diskPosts(where('state'))).toHaveLength(1);
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
      const storage = testStorage('slack', { free: 0.05 });
      const processor = healthProcessor(deps({ config: configWith('h-slack'), storage, notifier: kit.notifierFor('#deleted') }));
      const job = await kit.runJob(processor, {});
      expect(await job.getState()).toBe('completed');
      expect((job.returnvalue as { failing: string[] }).failing).toContain(`${where('slack')}/disk`);
      await kit.pd.waitFor((e) => e.dedup_key === diskKey('slack') && e.event_action === 'trigger', 30_000);
      const refused = () => kit.slack.calls.filter((c) => c.body.channel === '#deleted' && JSON.stringify(c.body).includes(where('slack')));
      expect(refused().map((c) => c.response.error)).toEqual(['channel_not_found']);
      expect(kit.logs.some((l) => l.includes('could not post to the channel') && l.includes('channel_not_found'))).toBe(true);

      const again = await kit.runJob(processor, {});
      expect(await again.getState()).toBe('completed');
      expect(refused()).toHaveLength(1);
      expect(kit.pd.events.filter((e) => e.dedup_key === diskKey('slack')).map((e) => e.event_action)).toEqual(['trigger']);
    });
  });

  describe('when PagerDuty answers 500', () => {
    it('the run completes and says paged; the delivery retries and PagerDuty gets the page once', async () => {
      const rejectedBefore = kit.pd.rejected.length;
      kit.pd.failNext(1, 500);
      const job = await kit.runJob(healthProcessor(deps({ config: configWith('h-pd500'), storage: testStorage('pd500', { free: 0.05 }) })), {});
      expect(await job.getState()).toBe('completed');
      expect(contextOf(diskPosts(where('pd500'))[0])).toContain(`PagerDuty page queued (warning, dedup key ${diskKey('pd500')})`);
      await kit.pd.waitFor((e) => e.dedup_key === diskKey('pd500') && e.event_action === 'trigger', 30_000);
      expect(kit.pd.rejected.slice(rejectedBefore).map((r) => r.status)).toEqual([500]);
      expect(kit.pd.alerts.get(diskKey('pd500'))?.actions).toEqual(['trigger']);
    });
  });

  describe('when PagerDuty refuses the page (400)', () => {
    // A 400 is dropped by the delivery (retrying cannot heal it). The channel, told "PagerDuty paged", is told that
    // nobody was; the page's state is forgotten, so nothing claims to resolve it, and the next episode pages again.
    it('the channel hears that nobody was paged; later runs of the same episode stay quiet', async () => {
      const rejectedBefore = kit.pd.rejected.length;
      kit.pd.failNext(1, 400);
      const processor = healthProcessor(deps({ config: configWith('h-pd400'), storage: testStorage('pd400', { free: 0.05 }) }));
      const job = await kit.runJob(processor, {});
      expect(await job.getState()).toBe('completed');
      expect(contextOf(diskPosts(where('pd400'))[0])).toContain(`PagerDuty page queued (warning, dedup key ${diskKey('pd400')})`);
      await until('the PagerDuty outbox of h-pd400 drained', async () => (await kit.redis.llen(outboxKey(kit.prefix, diskKey('pd400')))) === 0);
      await until('the refusal posted', () =>
        [...kit.slack.messages.values()].some((m) =>
          m.text?.startsWith(`:rotating_light: PagerDuty refused a page: nobody was paged for \`${diskKey('pd400')}\``),
        ),
      );
      expect(kit.pd.rejected.slice(rejectedBefore).map((r) => r.status)).toEqual([400]);
      expect(kit.pd.alerts.has(diskKey('pd400'))).toBe(false);
      expect(await pageOpen('pd400')).toBeNull();

      const requests = kit.pd.requests.length;
      const again = await kit.runJob(processor, {});
      expect((again.returnvalue as { failing: string[] }).failing).toContain(`${where('pd400')}/disk`);
      expect(await kit.redis.llen(outboxKey(kit.prefix, diskKey('pd400')))).toBe(0);
      expect(kit.pd.requests.length).toBe(requests);
      expect(diskPosts(where('pd400'))).toHaveLength(1);
    });
  });
});
