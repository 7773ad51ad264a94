import { unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { EphemeralPostgres } from '../../src/dev/ephemeral.ts';
import { archivedBases } from '../../src/postgres/pitr/wal-index.ts';
import { LocalWalStore } from '../../src/postgres/pitr/wal-store.ts';
import { segmentOf } from '../../src/postgres/pitr/window.ts';
import { completeSegment } from '../support/pitr-archive.ts';
import { until } from '../support/until.ts';
import { channelMessage, type Harness, slash } from './harness.ts';
import { type ShopPitr, startShopPitr } from './pitr-harness.ts';

/**
 * A WAL segment lost from the archive breaks the recoverable window for every moment after it: the bot's own health
 * run (the health queue, through the real worker) finds the gap, starts a base backup itself (once, however many runs
 * see the gap), says so in the page's post, and the page resolves once that base backup and WAL after it are archived.
 */
let h: Harness;
let pg: EphemeralPostgres;
let shop: ShopPitr | undefined;

beforeAll(async () => {
  shop = await startShopPitr({ pgUrl: inject('pgUrl'), redisUrl: inject('redisUrl'), tag: 'break' });
  ({ h, pg } = shop);
}, 60_000);

afterAll(() => shop?.stop());

const store = () => new LocalWalStore(h.backupDir, 'shop');
const archived = (name: string) => until(`WAL ${name} archived`, async () => ((await store().list()).some((e) => e.name === name) ? true : undefined));
const pages = (action: string) => h.pd.events.filter((e) => e.dedup_key === 'pg-backup-bot/shop/wal-gap' && e.event_action === action);
const healthRun = async () => {
  const job = await h.service.deps.queues.health.add('health', {});
  await until('the health run', async () => (['completed', 'failed'].includes(await job.getState()) ? true : undefined));
};

describe('a base backup started by the bot when the window breaks', () => {
  it('starts one for a lost segment, says so in the page, starts no second one, and the page resolves once it is done', { timeout: 120_000 }, async () => {
    // A base backup as people take one, then WAL after it, one segment of which is lost.
    const asked = /`(base-backup-shop-[\w-]+)`/.exec((await slash(h, '/backup', 'now --physical shop')).text)?.[1];
    await channelMessage(h, asked as string, /succeeded/, 60_000);
    const [first] = await archivedBases(h.backupDir, 'shop');
    if (!first) throw new Error('no base backup stored');
    const firstEnd = segmentOf(first.endLsn, first.timeline);
    let after: string[] = [];
    for (let i = 0; i < 10 && after.length < 3; i++) {
      await archived(await completeSegment(pg.url));
      after = (await store().list()).filter((e) => e.name > firstEnd && !e.name.endsWith('.history')).map((e) => e.name);
    }
    const missing = after[1] as string;
    const entry = (await store().list()).find((e) => e.name === missing);
    await unlink(join(store().dir, entry?.file as string));

    await healthRun();
    const post = await until('the gap posted', async () =>
      [...h.slack.messages.values()].find(
        (m) => (m.text ?? '').startsWith('shop: gap in the WAL archive') && (m.text ?? '').includes('started that base backup itself'),
      ),
    );
    const jobId = /\(job (base-backup-shop-[\w-]+), after the gap at WAL ([0-9A-F]{24})\)/.exec(post.text ?? '');
    expect(jobId?.[2]).toBe(missing);
    expect(post.text).toContain(`segment ${missing} is missing from the WAL archive`);
    expect(post.text).toContain('the window opens again once it finishes, and this clears then.');
    // Its own sentence after the window's (it read "… UTC The bot started").
    expect(post.text).toMatch(/(UTC|\)|yet)\. The bot started that base backup itself at /);
    expect((await until('the page', async () => pages('trigger')[0])).payload?.summary).toBe(
      `The WAL archive of shop has a gap: segment ${missing} is missing`,
    );

    // The base backup runs through the worker, with its own message naming why.
    const done = await channelMessage(h, jobId?.[1] as string, /succeeded/, 120_000);
    expect(JSON.stringify(done.blocks)).toContain(`after the gap at WAL ${missing}`);
    // WAL after it, then the health runs: the window starts again after the gap, and the page resolves.
    for (let i = 0; i < 10 && pages('resolve').length === 0; i++) {
      await archived(await completeSegment(pg.url));
      await healthRun();
    }
    expect(pages('resolve')).toHaveLength(1);
    // One base backup for the gap, however many runs saw it: the first at start, and this one.
    expect(await archivedBases(h.backupDir, 'shop')).toHaveLength(2);
    const jobs = await h.service.deps.queues.baseBackup.getJobs(['completed', 'failed', 'active', 'waiting', 'delayed']);
    expect(jobs.filter((j) => j.data.label?.startsWith('after the gap'))).toHaveLength(1);
  });
});
