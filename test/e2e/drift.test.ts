import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { DRIFT_ACK_ACTION } from '../../src/notifications/health-messages.ts';
import type { Manifest } from '../../src/storage/manifest.ts';
import { runSql } from '../support/databases.ts';
import type { SlackMessage } from '../support/slack-server.ts';
import { auditLines, channelMessage, click, jobIdOf, slash, startHarness, type Harness } from './harness.ts';

/**
 * What the backups already know (issue 18), through the whole bot: real backups of a real database, the worker's
 * thread, the health check after each backup, `/backup diff`, the Acknowledge button, /metrics.
 */
let h: Harness;

const DRIFT_POST = /^shop: data drift: tables lost rows —/;
const CLEARED_POST = /^shop: data drift: tables lost rows cleared/;
const messages = () => [...h.slack.messages.values()];
const posts = (pattern: RegExp) => messages().filter((m) => !m.thread_ts && pattern.test(m.text ?? ''));

async function waitFor<T>(what: string, find: () => T | undefined | Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const found = await find();
    if (found !== undefined) return found;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(
    `timed out waiting for ${what}: ${messages()
      .map((m) => m.text)
      .join(' | ')}`,
  );
}

/** `/backup now`, then the manifest and the verdict's message once the worker's health check after it has run. */
async function backup(): Promise<{ manifest: Manifest; verdict: SlackMessage }> {
  const jobId = jobIdOf((await slash(h, '/backup', 'now')).text);
  if (!jobId) throw new Error('no job id');
  const verdict = await channelMessage(h, jobId, /succeeded/);
  // Read again once completed: a Job fetched before that holds no return value.
  const job = await waitFor('the finished job', async () => {
    const j = await h.service.deps.queues.backup.getJob(jobId);
    return (await j?.isCompleted()) ? h.service.deps.queues.backup.getJob(jobId) : undefined;
  });
  if (!job) throw new Error(`job ${jobId} is gone`);
  const manifest = await h.service.deps.storage.readManifest('shop', (job.returnvalue as { backupId: string }).backupId);
  // The health check runs after the job has left the active list; a health job queued now runs after it.
  await runHealth();
  return { manifest, verdict };
}

async function runHealth(): Promise<void> {
  const job = await h.service.deps.queues.health.add('health', {});
  await waitFor('the health job', async () => ((await job.isCompleted()) || (await job.isFailed()) ? true : undefined));
}

/** A reply in a message's thread whose text matches. */
const threadReply = (root: SlackMessage, pattern: RegExp) =>
  waitFor(`a reply under ${root.ts} matching ${pattern}`, () => messages().find((m) => m.thread_ts === root.ts && pattern.test(m.text ?? '')));

/** The bullet lines of one section (`*Schema*`, `*Rows*`) of a drift text. */
function section(text: string, name: string): string[] {
  const after = text.split(`*${name}*\n`)[1] ?? '';
  return after
    .split('\n*')[0]
    ?.split('\n')
    .filter((l) => l.startsWith('• '))
    .map((l) => l.slice(2)) as string[];
}

let a: Manifest;
let b: Manifest;

beforeAll(async () => {
  h = await startHarness({ pgUrl: inject('pgUrl'), redisUrl: inject('redisUrl') });
  await runSql(
    h.source.url,
    `ALTER TABLE shop.customers ENABLE ROW LEVEL SECURITY;
     CREATE POLICY customers_own ON shop.customers USING (true);
     CREATE TABLE shop.events (id int PRIMARY KEY, what text NOT NULL);
     INSERT INTO shop.events SELECT i, 'e' || i FROM generate_series(1, 100) AS i;
     CREATE TABLE public.notes (id int PRIMARY KEY);
     INSERT INTO public.notes SELECT generate_series(1, 5000);`,
  );
});

afterAll(async () => {
  await h?.stop();
});

describe('drift between two backups', () => {
  let verdictB: SlackMessage;

  it('posts data drift once, with the tables, their counts, both backups and the restore commands; not paged', async () => {
    a = (await backup()).manifest;
    expect(a.definitions?.tables.find((t) => t.name === 'customers')?.policies).toHaveProperty('customers_own');
    await runSql(
      h.source.url,
      `DELETE FROM shop.order_items;
       DROP TABLE shop.delivery_slots;
       ALTER TABLE shop.customers DROP COLUMN shipping_address;
       ALTER POLICY customers_own ON shop.customers USING (id > 0);
       INSERT INTO shop.events SELECT i, 'e' || i FROM generate_series(101, 2000) AS i;`,
    );
    ({ manifest: b, verdict: verdictB } = await backup());
    const post = await waitFor('the data-drift post', () => posts(DRIFT_POST)[0]);
    const text = post.text ?? '';
    expect(text).toContain(`2 tables lost rows between ${a.backupId} and ${b.backupId}`);
    const items = a.verification.tables.find((t) => t.table === 'order_items')?.rows ?? 0;
    expect(items).toBeGreaterThan(1000);
    expect(text).toContain(
      `shop.order_items: ${items.toLocaleString('en-US')} rows → 0 (emptied), restore with \`/restore ${a.backupId} --table=shop.order_items\``,
    );
    expect(text).toMatch(
      new RegExp(`shop\\.delivery_slots: 240 rows → gone \\(dropped\\), restore with \`/restore ${a.backupId} --table=shop\\.delivery_slots\``),
    );
    expect(text).not.toContain('shop.events');
    expect(JSON.stringify(post.blocks)).toContain(DRIFT_ACK_ACTION);
    // Once per episode: more health checks add nothing; a warning is posted, never paged.
    await runHealth();
    await runHealth();
    expect(posts(DRIFT_POST)).toHaveLength(1);
    expect(h.pd.events.filter((e) => e.dedup_key === 'pg-backup-bot/shop/data-drift')).toEqual([]);
  }, 120_000);

  it("lists exactly those schema changes in the backup's thread, and the rows beside them", async () => {
    const reply = await threadReply(verdictB, /Since/);
    expect(reply.text).toContain(`Since \`${a.backupId}\``);
    expect(section(reply.text ?? '', 'Schema')).toEqual([
      'table shop.delivery_slots dropped',
      'column shop.customers.shipping_address dropped',
      'policy customers_own on shop.customers changed',
    ]);
    expect(section(reply.text ?? '', 'Rows')).toContain('grew: shop.events: 100 rows → 2,000 (20×)');
  });

  it('/backup diff says the same, in either order', async () => {
    const { text } = await slash(h, '/backup', `diff ${b.backupId} ${a.backupId}`);
    expect(text).toContain(`\`${a.backupId}\` → \`${b.backupId}\``);
    expect(section(text, 'Schema')).toEqual([
      'table shop.delivery_slots dropped',
      'column shop.customers.shipping_address dropped',
      'policy customers_own on shop.customers changed',
    ]);
    const rows = section(text, 'Rows');
    expect(rows).toHaveLength(3);
    expect(rows[0]).toMatch(new RegExp(`^shop\\.order_items: .* → 0 \\(emptied\\) — \`/restore ${a.backupId} --table=shop\\.order_items\`$`));
    expect(rows[1]).toBe(`shop.delivery_slots: 240 rows → gone (dropped) — \`/restore ${a.backupId} --table=shop.delivery_slots\``);
    expect(rows[2]).toBe('grew: shop.events: 100 rows → 2,000 (20×)');
  });

  it('names the table that grew in the size evidence, and exports the number of tables in drift', async () => {
    const { text } = await slash(h, '/backup', 'health shop');
    expect(text).toContain(`grew since ${a.backupId}: shop.events: 100 rows → 2,000 (20×)`);
    const families = parsePrometheusTextFormat(await (await fetch(`${h.metricsUrl}/metrics`)).text());
    const drift = families.find((f) => f.name === 'pgbb_data_drift_tables')?.metrics.find((m) => m.labels?.target === 'shop');
    expect(drift?.value).toBe('2');
  });

  it('clears with a third backup that no longer shows it', async () => {
    await backup();
    const cleared = await waitFor('the cleared post', () => posts(CLEARED_POST)[0]);
    expect(posts(DRIFT_POST)).toHaveLength(1);
    // Cleared means no new loss, not the rows back: said, so the restore commands are not dropped.
    expect(JSON.stringify(cleared.blocks)).toContain('no table lost rows since the backup before');
    expect(JSON.stringify(cleared.blocks)).toContain('Rows lost earlier are not back: restore them with the commands posted when the loss was found.');
  }, 120_000);
});

describe('acknowledging a data drift', () => {
  it('clears it at once, updates the message, and keeps the click in the audit trail', async () => {
    await runSql(h.source.url, 'DELETE FROM shop.events');
    const { manifest } = await backup();
    const post = await waitFor('the second drift post', () => posts(DRIFT_POST)[1]);
    expect(post.text).toContain(`shop.events: 2,000 rows → 0 (emptied)`);
    const value = `shop ${manifest.backupId}`;
    const res = await click(h, {
      userId: 'U0ONCALL',
      userName: 'oncall',
      messageTs: post.ts,
      message: { text: post.text, blocks: post.blocks },
      action: { type: 'button', action_id: DRIFT_ACK_ACTION, block_id: `drift-ack:${manifest.backupId}`, value },
    });
    expect(res.status).toBe(200);
    await h.slack.waitFor((c) => c.method === 'chat.update' && c.body.ts === post.ts && c.response.ok === true, 10_000);
    const updated = h.slack.messages.get(post.ts);
    expect(JSON.stringify(updated?.blocks)).toContain('Acknowledged by <@U0ONCALL>');
    expect(JSON.stringify(updated?.blocks)).not.toContain(DRIFT_ACK_ACTION);
    const cleared = await waitFor('the cleared post', () => posts(CLEARED_POST)[1]);
    expect(JSON.stringify(cleared.blocks)).toContain('acknowledged by oncall');
    const audit = await waitFor('the audit line', async () => (await auditLines(h)).find((l) => l.what === DRIFT_ACK_ACTION));
    expect(audit).toMatchObject({ kind: 'action', userId: 'U0ONCALL', args: value, decision: 'allowed', role: 'operator' });
  }, 120_000);
});

describe('a second loss before the first has cleared', () => {
  it('is posted on its own, naming only the newly lost table', async () => {
    await runSql(
      h.source.url,
      `CREATE TABLE shop.ledger_a (id int PRIMARY KEY);
       INSERT INTO shop.ledger_a SELECT generate_series(1, 2000);
       CREATE TABLE shop.ledger_b (id int PRIMARY KEY);
       INSERT INTO shop.ledger_b SELECT generate_series(1, 3000);`,
    );
    await backup();
    const before = posts(DRIFT_POST).length;
    await runSql(h.source.url, 'DELETE FROM shop.ledger_a');
    await backup();
    const first = await waitFor('the ledger_a post', () => posts(DRIFT_POST)[before]);
    expect(first.text).toContain('shop.ledger_a: 2,000 rows → 0 (emptied)');
    // The condition is still failing (nobody acknowledged, no backup without losses) when the next table goes.
    await runSql(h.source.url, 'DELETE FROM shop.ledger_b');
    const { manifest } = await backup();
    const second = await waitFor('the ledger_b post', () => posts(DRIFT_POST)[before + 1]);
    expect(second.text).toContain('shop.ledger_b: 3,000 rows → 0 (emptied)');
    expect(second.text).toContain(`and ${manifest.backupId}`);
    expect(second.text).not.toContain('ledger_a');
    // Still once per episode: more checks of the same backup add nothing.
    await runHealth();
    expect(posts(DRIFT_POST)).toHaveLength(before + 2);
    expect(posts(CLEARED_POST).filter((m) => Number(m.ts) > Number(first.ts))).toEqual([]);
  }, 180_000);
});

describe('counts from different scopes', () => {
  it('are not compared: a target whose schemas changed in the config', async () => {
    const target = h.config.targets.find((t) => t.name === 'shop');
    if (!target) throw new Error('no target');
    // As a deployer narrowing the target to one schema would: public.notes (5,000 rows) leaves the backup's scope.
    target.schemas = ['shop'];
    try {
      const before = posts(DRIFT_POST).length;
      const { manifest, verdict } = await backup();
      expect(manifest.scope).toEqual({ schemas: ['shop'], excludeTables: [] });
      const reply = await threadReply(verdict, /Since/);
      expect(section(reply.text ?? '', 'Rows')).toEqual([expect.stringMatching(/^not compared: their scopes differ/)]);
      expect(section(reply.text ?? '', 'Schema')).toEqual([expect.stringMatching(/^not compared: their scopes differ/)]);
      expect(posts(DRIFT_POST)).toHaveLength(before);
    } finally {
      target.schemas = [];
    }
  }, 120_000);
});
