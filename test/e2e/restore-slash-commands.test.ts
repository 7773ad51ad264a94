import { open, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { Manifest } from '../../src/storage/manifest.ts';
import { scratchScopePrefix } from '../../src/postgres/scratch.ts';
import { createTestDatabase, runSql } from '../support/databases.ts';
import { sendBlockAction, sendSlashCommand } from '../support/slack-requests.ts';
import type { SlackMessage } from '../support/slack-server.ts';
import { SIGNING_SECRET, startHarness, type Harness } from './harness.ts';
import { artifactPath } from './restore-check.ts';

const ADMIN = 'U0ADMIN';
let h: Harness;

const slash = (command: string, text: string, userId = 'U0ONCALL') =>
  sendSlashCommand({
    url: h.eventsUrl,
    signingSecret: SIGNING_SECRET,
    command,
    text,
    userId,
    userName: userId.toLowerCase(),
    channelId: 'C0INCIDENTS',
    responseUrl: h.slack.responseUrl(`r-${Math.random()}`),
  });
const replyOf = (body: unknown) => body as { text?: string; blocks?: Array<Record<string, unknown>> };
const jobIdOf = (text: string | undefined) => /job `([^`]+)`/.exec(text ?? '')?.[1] ?? '';

async function channelMessage(jobId: string, pattern: RegExp, timeoutMs = 60_000): Promise<SlackMessage> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    for (const m of h.slack.messages.values()) {
      if (!m.thread_ts && JSON.stringify(m.blocks ?? '').includes(jobId) && pattern.test(m.text ?? '')) return m;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no message for ${jobId} matching ${pattern}: ${[...h.slack.messages.values()].map((m) => m.text).join(' | ')}`);
}

async function scratchDatabases(): Promise<string[]> {
  const c = new pg.Client({ connectionString: inject('pgUrl') });
  await c.connect();
  const { rows } = await c.query<{ datname: string }>("select datname from pg_database where datname like 'pgbb_rt_%'");
  await c.end();
  // Only this bot's (queue prefix) scratch databases: other test files restore-test on the same server meanwhile.
  return rows.map((r) => r.datname).filter((n) => n.startsWith(scratchScopePrefix(h.config.queuePrefix)));
}

async function count(url: string, sql: string): Promise<number> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const { rows } = await c.query<{ n: string }>(sql);
    return Number(rows[0]?.n);
  } finally {
    await c.end();
  }
}

async function takeBackup(): Promise<Manifest> {
  const id = jobIdOf(replyOf((await slash('/backup', 'now')).body).text);
  await channelMessage(id, /succeeded/);
  const [newest] = await h.service.deps.storage.list('shop');
  if (!newest) throw new Error('no backup');
  return newest;
}

let good: Manifest;

beforeAll(async () => {
  const cfg = join(tmpdir(), `pgbb-rt-${process.pid}-${Date.now()}.yml`);
  await writeFile(cfg, 'restoreTest:\n  smokeQueries:\n    - name: orders by status\n      sql: select status, count(*) from shop.orders group by status\n');
  h = await startHarness({ pgUrl: inject('pgUrl'), redisUrl: inject('redisUrl'), env: { RESTORE_ALLOWED_USERS: ADMIN, BOT_CONFIG: cfg } });
  good = await takeBackup();
});

afterAll(async () => {
  await h?.stop();
});

describe('/restore-test', () => {
  it('restores the latest backup into a scratch database, compares, reports the RTO and drops the scratch database', async () => {
    const res = await slash('/restore-test', 'latest');
    expect(res.status).toBe(200);
    expect(res.ms).toBeLessThan(3000);
    const text = replyOf(res.body).text ?? '';
    expect(text).toContain(good.backupId);
    const jobId = jobIdOf(text);
    const msg = await channelMessage(jobId, /passed/);
    const history = msg.history.map((x) => x.text).join(' | ');
    expect(history).toMatch(/verifying checksums/);
    expect(history).toMatch(/restoring/);
    const shown = JSON.stringify(msg.blocks);
    expect(shown).toMatch(/Restore time \(RTO\)/);
    expect(shown).toMatch(/9 tables compared row for row/);
    expect(shown).toMatch(/1 smoke query/);
    expect(shown).toMatch(/dropped/);
    expect(await scratchDatabases()).toEqual([]);
    const hist = replyOf((await slash('/restore-test', 'history')).body).text ?? '';
    expect(hist).toMatch(new RegExp(`${good.backupId}.*passed`));
  });

  it('fails a corrupted artifact before restoring, pages critical, and resolves on the next pass', async () => {
    const bad = await takeBackup();
    const file = await open(artifactPath(h.backupDir, bad), 'r+');
    const { size } = await file.stat();
    const byte = Buffer.alloc(1);
    await file.read(byte, 0, 1, Math.floor(size / 2));
    byte[0] = (byte[0] ?? 0) ^ 0xff;
    await file.write(byte, 0, 1, Math.floor(size / 2));
    await file.close();

    const jobId = jobIdOf(replyOf((await slash('/restore-test', bad.backupId)).body).text);
    const msg = await channelMessage(jobId, /FAILED/);
    expect(msg.text).toMatch(/artifact corrupted/);
    const trigger = await h.pd.waitFor((e) => e.event_action === 'trigger' && e.dedup_key === 'pg-backup-bot/shop/restore-test', 30_000);
    expect(trigger.payload?.severity).toBe('critical');
    expect(await scratchDatabases()).toEqual([]);

    const again = jobIdOf(replyOf((await slash('/restore-test', good.backupId)).body).text);
    await channelMessage(again, /passed/);
    const resolve = await h.pd.waitFor((e) => e.event_action === 'resolve' && e.dedup_key === 'pg-backup-bot/shop/restore-test', 30_000);
    expect(resolve).toBeDefined();
    await h.service.deps.storage.deleteBackup('shop', bad.backupId);
  }, 120_000);

  it('answers bad text with usage and starts nothing', async () => {
    const before = await h.service.deps.queues.restoreTest.count();
    const res = await slash('/restore-test', 'latest; drop database x');
    expect(replyOf(res.body).text).toMatch(/Usage/);
    expect(await h.service.deps.queues.restoreTest.count()).toBe(before);
  });
});

describe('/restore', () => {
  it('restores only the named table into a new database named in the reply', async () => {
    const res = await slash('/restore', `${good.backupId} --table=shop.customers`);
    const text = replyOf(res.body).text ?? '';
    const database = /new database `([^`]+)`/.exec(text)?.[1] ?? '';
    expect(database).toMatch(/^pgbb_restore_/);
    await channelMessage(jobIdOf(text), /Restored into/);
    const url = inject('pgUrl').replace(/\/[^/]*$/, `/${database}`);
    expect(await count(url, 'select count(*) as n from shop.customers')).toBe(500);
    expect(await count(url, "select count(*) as n from pg_tables where schemaname = 'shop'")).toBe(1);
    await runSql(inject('pgUrl'), `DROP DATABASE "${database}" WITH (FORCE)`);
  });

  describe('into an existing database', () => {
    it('refuses users not allowed, naming who may', async () => {
      const before = await h.service.deps.queues.restore.count();
      const text = replyOf((await slash('/restore', `${good.backupId} --table=shop.customers --into=${h.source.name}`)).body).text ?? '';
      expect(text).toMatch(/Refused: Only <@U0ADMIN> may restore into an existing database/);
      expect(await h.service.deps.queues.restore.count()).toBe(before);
    });

    it('needs a confirmation click from an allowed user, then overwrites only the named table', async () => {
      // order_items is a leaf (nothing references it): an operator's "oops, I deleted rows" case.
      await runSql(h.source.url, 'DELETE FROM shop.order_items WHERE quantity > 1; UPDATE shop.products SET name = name || \' (edited)\' WHERE id = 1');
      expect(await count(h.source.url, 'select count(*) as n from shop.order_items')).toBeLessThan(7500);
      const productsBefore = await count(h.source.url, "select count(*) as n from shop.products where name like '%(edited)'");
      const before = await h.service.deps.queues.restore.count();
      const reply = replyOf((await slash('/restore', `${good.backupId} --table=shop.order_items --into=${h.source.name}`, ADMIN)).body);
      expect(reply.text).toMatch(/overwrite.*shop\.order_items.*existing database/);
      const button = (reply.blocks ?? []).flatMap((b) => (b.elements as Array<Record<string, unknown>> | undefined) ?? []).find((e) => e.action_id === 'restore_into_confirm');
      expect(button?.confirm).toBeDefined();
      expect(await h.service.deps.queues.restore.count()).toBe(before); // nothing runs before the click

      const click = (userId: string, responseUrl: string) =>
        sendBlockAction({
          url: h.eventsUrl,
          signingSecret: SIGNING_SECRET,
          userId,
          channelId: 'C0INCIDENTS',
          messageTs: '1700000000.000100',
          responseUrl,
          action: { type: 'button', action_id: 'restore_into_confirm', value: String(button?.value) },
        });
      await click('U0INTRUDER', h.slack.responseUrl('intruder'));
      const refused = await h.slack.waitForResponse((r) => r.id === 'intruder');
      expect(JSON.stringify(refused.body)).toMatch(/Refused/);
      expect(await h.service.deps.queues.restore.count()).toBe(before);

      await click(ADMIN, h.slack.responseUrl('admin'));
      const confirmed = await h.slack.waitForResponse((r) => r.id === 'admin');
      const jobId = jobIdOf(String((confirmed.body as { text?: string }).text));
      await channelMessage(jobId, /Restored into/);
      expect(await count(h.source.url, 'select count(*) as n from shop.order_items')).toBe(7500);
      expect(await count(h.source.url, "select count(*) as n from shop.products where name like '%(edited)'")).toBe(productsBefore);

      // The button works once.
      await click(ADMIN, h.slack.responseUrl('again'));
      expect(JSON.stringify((await h.slack.waitForResponse((r) => r.id === 'again')).body)).toMatch(/expired or was already used/);
      const records = await h.service.deps.storage.listRecords('restore', 'shop');
      expect(records[0]).toMatchObject({ database: h.source.name, requestedBy: { userId: ADMIN } });
    });
  });
});
