import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { Manifest } from '../../src/storage/manifest.ts';
import { plannedSchedulers, syncSchedulers } from '../../src/schedules/sync.ts';
import { createTestDatabase } from '../support/databases.ts';
import { SIGNING_SECRET, channelMessage, jobIdOf, loadSampleSchema, slash, startHarness, type Harness } from './harness.ts';
import { artifactPath, listArtifact, restoreAndCount } from './restore-check.ts';

let h: Harness;

async function backupDirsWithoutManifest(): Promise<string[]> {
  const dir = join(h.backupDir, 'shop');
  const entries = await readdir(dir).catch(() => [] as string[]);
  const unfinished: string[] = [];
  for (const e of entries) {
    const files = await readdir(join(dir, e));
    if (!files.includes('manifest.json')) unfinished.push(e);
  }
  return unfinished;
}

beforeAll(async () => {
  h = await startHarness({ pgUrl: inject('pgUrl'), redisUrl: inject('redisUrl') });
});

afterAll(async () => {
  await h?.stop();
});

describe('/backup now, end to end', () => {
  let manifest: Manifest;
  let jobId: string;

  it('acks at once with the job id, then posts a message that ends with the verdict', async () => {
    const res = await slash(h, '/backup', 'now');
    expect(res.status).toBe(200);
    expect(res.ms).toBeLessThan(3000);
    expect((res.body as { response_type?: string }).response_type).toBe('ephemeral');
    jobId = jobIdOf(res.text) ?? '';
    expect(jobId).toMatch(/^backup-shop-/);

    const msg = await channelMessage(h, jobId, /succeeded/);
    expect(msg.channel).toBe('C0INCIDENTS');
    expect(msg.updates).toBeGreaterThanOrEqual(1);
    expect(msg.history[0]?.text).toMatch(/running/);
    const shown = JSON.stringify(msg.blocks);
    const [newest] = await h.service.deps.storage.list('shop');
    if (!newest) throw new Error('no backup listed after a successful job');
    manifest = newest;
    for (const expected of [manifest.backupId, 'Size', 'Duration', 'zstd level 2', 'Tables / rows', manifest.artifacts[0]?.sha256.slice(0, 12), 'Kept until']) {
      expect(shown).toContain(expected);
    }
    expect(manifest.jobId).toBe(jobId);
    expect(manifest.requestedBy).toMatchObject({ source: 'slack', userId: 'U0ONCALL' });
    // Details go in the thread under the verdict.
    const thread = [...h.slack.messages.values()].filter((m) => m.thread_ts === msg.ts);
    expect(thread.map((m) => m.text).join('\n')).toMatch(/shop\.orders/);
  });

  it('stores an artifact pg_restore can read, which restores to identical row and object counts', async () => {
    // Encrypted (the harness sets a key pair): read back with the age CLI, as an operator would.
    expect(artifactPath(h.backupDir, manifest)).toMatch(/database\.pgdump\.zst\.age$/);
    const toc = await listArtifact(artifactPath(h.backupDir, manifest), Math.floor(manifest.database.serverVersionNum / 10000), h.identityFile);
    expect(toc).toMatch(/TABLE DATA shop order_items/);
    expect(toc).toMatch(/MATERIALIZED VIEW DATA shop/);
    const target = await createTestDatabase(inject('pgUrl'), 'restored');
    try {
      const restored = await restoreAndCount(
        artifactPath(h.backupDir, manifest),
        target.url,
        Math.floor(manifest.database.serverVersionNum / 10000),
        h.identityFile,
      );
      expect(restored.tables).toEqual(manifest.verification.tables);
      expect(restored.objects).toEqual(manifest.verification.objects);
      expect(manifest.verification.tables.find((t) => t.table === 'orders_default')?.rows).toBeGreaterThan(0);
      expect(manifest.verification.objects.partitionedTables).toBeGreaterThan(0);
      expect(manifest.verification.objects.materializedViews).toBeGreaterThan(0);
      expect(manifest.verification.objects.aggregates).toBeGreaterThan(0);
      expect(manifest.verification.objects.domains).toBeGreaterThan(0);
      expect(manifest.verification.objects.triggers).toBeGreaterThan(0);
    } finally {
      await target.drop();
    }
  });

  it('lists the backup, newest first, and shows job status', async () => {
    const list = (await slash(h, '/backup', 'list')).text;
    expect(list).toContain(manifest.backupId);
    // This harness starts its workers without schedules: Redis holds none, and status says so.
    const bare = (await slash(h, '/backup', 'status')).text;
    expect(bare).toMatch(/• daily backup \(daily, kept 30 days\): every day at 02:00 — :warning: \*not in Redis: it will not run\*/);
    expect(bare).toContain(`${plannedSchedulers(h.config).length} planned schedules are missing from Redis`);
    await syncSchedulers(h.service.deps.queues, h.config, h.service.deps.log);
    const status = (await slash(h, '/backup', 'status')).text;
    expect(status).toMatch(/Running\* \(0\)/);
    expect(status).not.toMatch(/not in Redis/);
    // No config file: the default production policy, times in UTC, next runs as BullMQ holds them.
    expect(status).toMatch(
      /Schedules \(times in UTC\):\n\*shop\*\n• daily backup \(daily, kept 30 days\): every day at 02:00 — next \w{3} \d{4}-\d\d-\d\d 02:00 UTC\+00:00/,
    );
  });

  it('answers a second request for a running backup with the running job id, starting no second dump', async () => {
    const [a, b] = await Promise.all([slash(h, '/backup', 'now shop'), slash(h, '/backup', 'now', { userId: 'U0OTHER' })]);
    const idA = jobIdOf(a.text);
    const idB = jobIdOf(b.text);
    expect(idA).toBeDefined();
    expect(idA).toBe(idB);
    expect(a.text + b.text).toMatch(/already queued or running/);
    await channelMessage(h, idA ?? '', /succeeded/);
    // The verdict is posted just before the job returns: wait for BullMQ to mark it completed.
    let finished = await h.service.deps.queues.backup.getJobs(['completed']);
    for (let i = 0; i < 100 && !finished.some((j) => j.id === idA); i++) {
      await new Promise((r) => setTimeout(r, 50));
      finished = await h.service.deps.queues.backup.getJobs(['completed']);
    }
    expect(finished.filter((j) => j.id === idA)).toHaveLength(1);
    expect(finished).toHaveLength(2);
  });
});

describe('requests that must not run anything', () => {
  it('refuses forged and stale requests with 401', async () => {
    const before = await h.service.deps.queues.backup.count();
    expect((await slash(h, '/backup', 'now', { forge: true })).status).toBe(401);
    expect((await slash(h, '/backup', 'now', { timestamp: Math.floor(Date.now() / 1000) - 6 * 60 })).status).toBe(401);
    expect(await h.service.deps.queues.backup.count()).toBe(before);
  });

  it.each(['frobnicate; rm -rf /', 'help', '', 'now ../../etc'])('answers %j with usage help and enqueues nothing', async (text) => {
    // Every job ever added, in whatever state: an earlier test's job may still move from active to completed.
    const jobs = async () => Object.values(await h.service.deps.queues.backup.getJobCounts()).reduce((a, b) => a + b, 0);
    const before = await jobs();
    const res = await slash(h, '/backup', text);
    expect(res.status).toBe(200);
    expect(res.text).toContain('/backup now [target]');
    expect(await jobs()).toBe(before);
  });

  it('names the known targets for an unknown one', async () => {
    expect((await slash(h, '/backup', 'now nosuchdb')).text).toMatch(/no target named "nosuchdb".*shop/);
  });
});

describe('when the backup fails', () => {
  it('reports the reason in the channel, pages PagerDuty through a 500, keeps nothing, and resolves on the next success', async () => {
    const listed = (await h.service.deps.storage.list('shop')).length;
    await h.source.drop();
    h.pd.failNext(2, 500);
    const res = await slash(h, '/backup', 'now');
    const jobId = jobIdOf(res.text) ?? '';
    const msg = await channelMessage(h, jobId, /FAILED/);
    expect(msg.text).toMatch(/does not exist/);
    expect(JSON.stringify(msg.blocks)).toMatch(/PagerDuty page queued/);
    expect(JSON.stringify(msg.blocks)).not.toMatch(/at .*\.ts:\d+/); // never a stack trace

    const trigger = await h.pd.waitFor((e) => e.event_action === 'trigger', 30_000);
    expect(trigger.dedup_key).toBe('pg-backup-bot/shop/backup');
    expect(trigger.payload?.severity).toBe('error');
    expect(trigger.payload?.summary).toMatch(/shop.*does not exist/);
    expect(trigger.payload?.custom_details).toMatchObject({ jobId });
    expect(h.pd.rejected.filter((r) => r.status === 400)).toEqual([]);

    expect(await h.service.deps.storage.list('shop')).toHaveLength(listed);
    expect(await backupDirsWithoutManifest()).toEqual([]);

    // The database comes back; the next backup succeeds and resolves the page.
    const again = await createTestDatabase(inject('pgUrl'), 'unused');
    await again.drop();
    const { default: pg } = await import('pg');
    const admin = new pg.Client({ connectionString: inject('pgUrl') });
    await admin.connect();
    await admin.query(`CREATE DATABASE "${h.source.name}"`);
    await admin.end();
    await loadSampleSchema(h.source.url);
    const ok = jobIdOf((await slash(h, '/backup', 'now')).text) ?? '';
    await channelMessage(h, ok, /succeeded/);
    const resolve = await h.pd.waitFor((e) => e.event_action === 'resolve', 30_000);
    expect(resolve.dedup_key).toBe('pg-backup-bot/shop/backup');
    expect(h.pd.events.map((e) => e.event_action)).toEqual(['trigger', 'resolve']);
  }, 120_000);

  it('never logs the signing secret or tokens', () => {
    const all = h.logs.join('');
    expect(all.length).toBeGreaterThan(0);
    for (const secret of [SIGNING_SECRET, 'xoxb-test-0000-pgbb', 'R0UT1NGKEY0123456789abcdefABCDEF']) expect(all).not.toContain(secret);
  });
});

describe('while posting to the channel is paged as failing', () => {
  it('a reply that promises the channel says posts there are failing, and stops saying it once the page is resolved (QA)', async () => {
    const escalation = h.service.deps.escalation;
    await escalation.failed('_bot', 'slack', {
      summary: 'pg-backup-bot cannot post to #incidents: Slack answered channel_not_found',
      severity: 'error',
      details: {},
    });
    const warned = await slash(h, '/backup', 'now');
    const jobId = jobIdOf(warned.text) ?? '';
    // (An earlier test's backup may still run: then the reply points at it, promising the channel all the same.)
    expect(warned.text).toMatch(
      /posted in #\S+?[.;][^\n]*\n:warning: Posts to \S+ are failing right now \(paged as pg-backup-bot\/_bot\/slack\): follow the job with `\/backup status`\.$/,
    );
    await channelMessage(h, jobId, /succeeded/);
    // Resolved, as the process that paged does when its next post goes through (watched-notifier.test.ts): replies
    // promise the channel plainly again.
    await escalation.passed('_bot', 'slack', { summary: 'pg-backup-bot posts to #incidents again' });
    const again = await slash(h, '/backup', 'now');
    expect(again.text).toMatch(/posted in \S+\.?/);
    expect(again.text).not.toMatch(/are failing right now/);
    await channelMessage(h, jobIdOf(again.text) ?? '', /succeeded/);
  }, 120_000);
});
