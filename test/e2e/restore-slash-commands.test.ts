import { open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { slackDate } from '../../src/notifications/slack-time.ts';
import type { Manifest } from '../../src/storage/manifest.ts';
import { formatBytes } from '../../src/format.ts';
import { scratchScopePrefix } from '../../src/postgres/restore/scratch.ts';
import { stagingName } from '../../src/postgres/restore/index.ts';
import { runSql } from '../support/databases.ts';
import { fingerprint } from '../support/fingerprint.ts';
import { channelMessage, click, jobIdOf, slash, startHarness, type Harness } from './harness.ts';
import { artifactPath } from './restore-check.ts';

const ADMIN = 'U0ADMIN';
let h: Harness;

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
  const id = jobIdOf((await slash(h, '/backup', 'now')).text) ?? '';
  await channelMessage(h, id, /succeeded/);
  const [newest] = await h.service.deps.storage.list('shop');
  if (!newest) throw new Error('no backup');
  return newest;
}

let good: Manifest;

let cfg: string;

beforeAll(async () => {
  cfg = join(tmpdir(), `pgbb-rt-${process.pid}-${Date.now()}.yml`);
  await writeFile(cfg, 'restoreTest:\n  smokeQueries:\n    - name: orders by status\n      sql: select status, count(*) from shop.orders group by status\n');
  h = await startHarness({ pgUrl: inject('pgUrl'), redisUrl: inject('redisUrl'), env: { RESTORE_ALLOWED_USERS: ADMIN, BOT_CONFIG: cfg } });
  good = await takeBackup();
});

afterAll(async () => {
  await h?.stop();
  await rm(cfg, { force: true });
});

/** The thread reply saying a job's backup was read back and marked damaged (its text), waited for up to 30 s. */
async function markedDamagedReply(msg: { ts?: string }): Promise<string | undefined> {
  const end = Date.now() + 30_000;
  const reply = () => [...h.slack.messages.values()].find((m) => m.thread_ts === msg.ts && /is marked damaged/.test(m.text ?? ''));
  while (!reply() && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
  return reply()?.text;
}

describe('/restore-test', () => {
  it('restores the latest backup into a scratch database, compares, reports the RTO and drops the scratch database', async () => {
    const res = await slash(h, '/restore-test', 'latest');
    expect(res.status).toBe(200);
    expect(res.ms).toBeLessThan(3000);
    expect(res.text).toContain(good.backupId);
    const jobId = jobIdOf(res.text) ?? '';
    const msg = await channelMessage(h, jobId, /passed/);
    const history = msg.history.map((x) => x.text).join(' | ');
    expect(history).toMatch(/verifying checksums/);
    expect(history).toMatch(/restoring/);
    const shown = JSON.stringify(msg.blocks);
    expect(shown).toMatch(/Restore time \(RTO\)/);
    expect(shown).toMatch(/9 tables: content identical; \d+ definitions identical; .*amcheck clean.*\(level content\)/);
    expect(shown).toMatch(/1 smoke query/);
    expect(shown).toMatch(/dropped/);
    expect(await scratchDatabases()).toEqual([]);
    const hist = (await slash(h, '/restore-test', 'history')).text;
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

    const jobId = jobIdOf((await slash(h, '/restore-test', bad.backupId)).text) ?? '';
    const msg = await channelMessage(h, jobId, /FAILED/);
    expect(msg.text).toMatch(/artifact corrupted/);
    // Read back twice more, the same: marked damaged, said in the thread, and refused from then on.
    const marked = await markedDamagedReply(msg);
    expect(marked).toMatch(
      new RegExp(
        `^:rotating_light: Backup \`${bad.backupId}\` is marked damaged \\(a restore test found artifact corrupted: database\\.pgdump\\.zst(\\.age)? \\(sha256 `,
      ),
    );
    expect((await slash(h, '/restore', bad.backupId)).text).toContain(`Backup ${bad.backupId} cannot be restored: a restore test found artifact corrupted`);
    // The history claims no restore time for it either: nothing was restored.
    const history = (await slash(h, '/restore-test', 'history')).text.split('\n').find((l) => l.includes(bad.backupId));
    expect(history).toMatch(/\*FAILED\* \(artifact corrupted: .*\) · restore n\/a \(nothing restored\) · by /);
    const trigger = await h.pd.waitFor((e) => e.event_action === 'trigger' && e.dedup_key === 'pg-backup-bot/shop/restore-test', 30_000);
    expect(trigger.payload?.severity).toBe('critical');
    expect(await scratchDatabases()).toEqual([]);

    const again = jobIdOf((await slash(h, '/restore-test', good.backupId)).text) ?? '';
    await channelMessage(h, again, /passed/);
    const resolve = await h.pd.waitFor((e) => e.event_action === 'resolve' && e.dedup_key === 'pg-backup-bot/shop/restore-test', 30_000);
    expect(resolve).toBeDefined();
    await h.service.deps.storage.deleteBackup('shop', bad.backupId);
  }, 120_000);

  it('a backup the checksum scrub marked damaged is refused by /restore-test and /restore, naming the newest good one, and nothing is queued or paged', async () => {
    const marked = await takeBackup();
    await h.service.deps.storage.markDamaged?.('shop', marked.backupId, 'the checksum scrub found artifact corrupted: database.pgdump.zst');
    // Every job ever added, in whatever state (one queued and already finished counts too); pages: no restore or
    // restore-test page (the health check pages the marked backup as `damaged`, as it should).
    const jobs = async () => {
      const all = await Promise.all([h.service.deps.queues.restoreTest.getJobCounts(), h.service.deps.queues.restore.getJobCounts()]);
      return all.map((c) => Object.values(c).reduce((a, b) => a + b, 0));
    };
    const [before, pages] = [await jobs(), h.pd.events.length];
    const refusal = `Backup ${marked.backupId} cannot be restored: the checksum scrub found artifact corrupted: database.pgdump.zst; marked `;
    for (const [command, text] of [
      ['/restore-test', marked.backupId],
      ['/restore', marked.backupId],
      ['/restore', `${marked.backupId} --table=shop.orders --into=shop`],
    ] as const) {
      const reply = (await slash(h, command, text, { userId: ADMIN })).text;
      expect(reply).toContain(`:warning: ${refusal}`);
      expect(reply).toContain(`The newest good backup of shop is \`${good.backupId}\`; \`/backup list shop\` shows them all. Nothing was started.`);
    }
    expect([
      await jobs(),
      h.pd.events
        .slice(pages)
        .filter((e) => e.event_action === 'trigger' && /\/restore(-test)?$/.test(e.dedup_key ?? ''))
        .map((e) => e.dedup_key),
    ]).toEqual([before, []]);
    // "latest" tests the newest good backup, and says the newer one is damaged, in the reply and in the verdict
    // (QA: it tested the older one in silence, and its pass read as "the latest backup restores").
    const latest = await slash(h, '/restore-test', 'latest');
    expect(latest.text).toMatch(new RegExp(`^Restore test of \`${good.backupId}\` queued: job \`[^\`]+\`.`));
    const notNewest = / :warning: (.*)$/.exec(latest.text)?.[1] ?? '';
    expect(notNewest).toMatch(
      new RegExp(
        `^The newest backup is damaged: ${marked.backupId} \\(the checksum scrub found artifact corrupted: database\\.pgdump\\.zst; marked [^)]+\\)\\. This test is of the newest good one, so it says nothing of it; \`/backup health shop\` shows the damage\\.$`,
      ),
    );
    const verdict = await channelMessage(h, jobIdOf(latest.text) ?? '', /passed/);
    expect(JSON.stringify(verdict.blocks)).toContain(JSON.stringify(notNewest).slice(1, -1));
    // Its pass resolves nothing: the newest backup is not known to restore (review).
    expect(JSON.stringify(verdict.blocks)).toContain('an open restore-test page stays open: this test was not of the newest backup');
    const [record] = await h.service.deps.storage.listRecords('restore-test', 'shop');
    expect(record?.notes).toContain(notNewest);
    await h.service.deps.storage.deleteBackup('shop', marked.backupId);
  }, 120_000);

  it('answers bad text with usage and starts nothing', async () => {
    const before = await h.service.deps.queues.restoreTest.count();
    const res = await slash(h, '/restore-test', 'latest; drop database x');
    expect(res.text).toMatch(/Usage/);
    expect(await h.service.deps.queues.restoreTest.count()).toBe(before);
  });
});

describe('/restore', () => {
  it('never replaces the server’s own databases with another database’s backup, and offers no button (QA)', async () => {
    const before = await h.service.deps.queues.restore.count();
    for (const db of ['postgres', 'template1']) {
      const reply = await slash(h, '/restore', `${good.backupId} --into=${db}`, { userId: ADMIN });
      expect(reply.text).toMatch(new RegExp(`^:warning: ${db} is .*: the bot does not replace it with a backup of ${h.source.name}\\. Nothing was started\\.`));
      expect(JSON.stringify(reply)).not.toContain('"action_id"');
    }
    expect(await h.service.deps.queues.restore.count()).toBe(before);
  });

  it('a table the backup does not hold is refused at once with the nearest names, nothing queued (QA: queued, then failed in the channel)', async () => {
    const before = await h.service.deps.queues.restore.count();
    for (const into of ['', ` --into=${h.source.name}`]) {
      const reply = await slash(h, '/restore', `${good.backupId} --table=shop.custmers${into}`, { userId: ADMIN });
      expect(reply.text).toBe(`Backup \`${good.backupId}\` has no table "shop.custmers" (did you mean \`--table=shop.customers\`?). Nothing was started.`);
    }
    expect(await h.service.deps.queues.restore.count()).toBe(before);
  });

  it('restores only the named table into a new database named in the reply', async () => {
    const { text } = await slash(h, '/restore', `${good.backupId} --table=shop.customers`);
    const database = /new database `([^`]+)`/.exec(text)?.[1] ?? '';
    expect(database).toMatch(/^pgbb_restore_/);
    await channelMessage(h, jobIdOf(text) ?? '', /Restored into/);
    const url = inject('pgUrl').replace(/\/[^/]*$/, `/${database}`);
    expect(await count(url, 'select count(*) as n from shop.customers')).toBe(500);
    expect(await count(url, "select count(*) as n from pg_tables where schemaname = 'shop'")).toBe(1);
    await runSql(inject('pgUrl'), `DROP DATABASE "${database}" WITH (FORCE)`);
  });

  it('restores the whole database into a new one on the target’s server, verified, named with its server, and recorded', async () => {
    const { text } = await slash(h, '/restore', good.backupId);
    const database = /new database `([^`]+)`/.exec(text)?.[1] ?? '';
    expect(database).toMatch(/^pgbb_restore_/);
    const server = new URL(inject('pgUrl'));
    expect(text).toContain(`on ${server.hostname}:${server.port}`);
    expect(text).not.toMatch(/password|postgres:\/\//i);
    const msg = await channelMessage(h, jobIdOf(text) ?? '', /Restored the whole database/);
    const shown = JSON.stringify(msg.blocks);
    expect(shown).toMatch(/11,446 rows; checked: .*9 tables: content identical; \d+ definitions identical/);
    expect(shown).toMatch(/Owners and grants were not restored/);
    const url = inject('pgUrl').replace(/\/[^/]*$/, `/${database}`);
    // Compared with its source by plain SQL, not by the bot's own checks.
    const [source, copy] = await Promise.all([fingerprint(h.source.url), fingerprint(url)]);
    expect(copy.tables).toEqual(source.tables);
    expect(copy.definitions).toEqual(source.definitions);
    const [record] = await h.service.deps.storage.listRecords('restore', 'shop');
    expect(record).toMatchObject({ database, passed: true, selection: { tables: [], schemas: [], into: null, created: true } });
    expect(record?.restoreMs).toBeGreaterThan(0);
    expect(record?.notes?.[0]).toMatch(/11,446 rows; checked: .*9 tables: content identical; \d+ definitions identical/);
    // Its restore time is a measured RTO: shown beside the restore tests.
    expect((await slash(h, '/restore-test', 'history')).text).toMatch(new RegExp(`full restore\\* into \`${database}\` · \`${good.backupId}\` · passed`));
    // Restored databases do not pile up: listed with what made them, dropped by the role that may make them.
    const listed = (await slash(h, '/restore', 'list')).text;
    expect(listed).toMatch(new RegExp(`\`${database}\` on ${server.hostname}:${server.port} · [\\d.]+ [KMG]i?B · restored from \`${good.backupId}\` · by <@`));
    const notOurs = await slash(h, '/restore', `drop ${h.source.name}`);
    expect(notOurs.text).toMatch(/is not a database a restore made.*Nothing was dropped/);
    expect(await count(inject('pgUrl'), `select count(*) as n from pg_database where datname = '${h.source.name}'`)).toBe(1);
    expect((await slash(h, '/restore', `drop ${database}`)).text).toMatch(new RegExp(`Dropped \`${database}\``));
    expect(await count(inject('pgUrl'), `select count(*) as n from pg_database where datname = '${database}'`)).toBe(0);
    expect((await slash(h, '/restore', 'list')).text).not.toContain(database);
  });

  it('a backup whose roles file alone is damaged: /restore restores it and says so; /restore-test refuses it', async () => {
    const rolesBad = await takeBackup();
    const file = await open(artifactPath(h.backupDir, rolesBad, 'globals'), 'r+');
    const { size } = await file.stat();
    const byte = Buffer.alloc(1);
    await file.read(byte, 0, 1, size - 10);
    byte[0] = (byte[0] ?? 0) ^ 0xff;
    await file.write(byte, 0, 1, size - 10);
    await file.close();
    const globals = rolesBad.artifacts.find((a) => a.role === 'globals')?.file ?? '';
    await h.service.deps.storage.markDamaged?.('shop', rolesBad.backupId, `the checksum scrub found artifact corrupted: ${globals}`);
    expect((await slash(h, '/restore-test', rolesBad.backupId)).text).toContain(`Backup ${rolesBad.backupId} cannot be restored`);
    const { text } = await slash(h, '/restore', rolesBad.backupId);
    const database = /new database `([^`]+)`/.exec(text)?.[1] ?? '';
    expect(database).toMatch(/^pgbb_restore_/);
    const msg = await channelMessage(h, jobIdOf(text) ?? '', /Restored the whole database/);
    const shown = JSON.stringify(msg.blocks);
    expect(shown).toMatch(
      /The backup's roles file is damaged \(artifact corrupted: globals\.sql\.zst(\.age)? \(sha256 [^)]*\)\): this restore does not read it/,
    );
    const url = inject('pgUrl').replace(/\/[^/]*$/, `/${database}`);
    expect(await count(url, 'select count(*) as n from shop.customers')).toBe(500);
    await runSql(inject('pgUrl'), `DROP DATABASE "${database}" WITH (FORCE)`);
    await h.service.deps.storage.deleteBackup('shop', rolesBad.backupId);
  }, 120_000);

  describe('into an existing database', () => {
    it('refuses users not allowed, naming who may', async () => {
      const before = await h.service.deps.queues.restore.count();
      const { text } = await slash(h, '/restore', `${good.backupId} --table=shop.customers --into=${h.source.name}`);
      expect(text).toMatch(/Refused: Only <@U0ADMIN> may restore into an existing database/);
      expect(await h.service.deps.queues.restore.count()).toBe(before);
    });

    it('needs a confirmation click from an allowed user, then overwrites only the named table', async () => {
      // order_items is a leaf (nothing references it): an operator's "oops, I deleted rows" case.
      await runSql(h.source.url, "DELETE FROM shop.order_items WHERE quantity > 1; UPDATE shop.products SET name = name || ' (edited)' WHERE id = 1");
      expect(await count(h.source.url, 'select count(*) as n from shop.order_items')).toBeLessThan(7500);
      const productsBefore = await count(h.source.url, "select count(*) as n from shop.products where name like '%(edited)'");
      const before = await h.service.deps.queues.restore.count();
      const reply = await slash(h, '/restore', `${good.backupId} --table=shop.order_items --into=${h.source.name}`, { userId: ADMIN });
      expect(reply.text).toMatch(/overwrite.*shop\.order_items.*existing database/);
      // What the name resolves to, as the restore will read it.
      expect(reply.text).toContain(' `--table=shop.order_items` is `shop.order_items`.');
      const button = ((reply.body as { blocks?: Array<Record<string, unknown>> }).blocks ?? [])
        .flatMap((b) => (b.elements as Array<Record<string, unknown>> | undefined) ?? [])
        .find((e) => e.action_id === 'restore_into_confirm');
      expect(button?.confirm).toBeDefined();
      expect(await h.service.deps.queues.restore.count()).toBe(before); // nothing runs before the click

      const confirm = (userId: string, responseId: string) =>
        click(h, {
          userId,
          messageTs: '1700000000.000100',
          responseId,
          action: { type: 'button', action_id: 'restore_into_confirm', value: String(button?.value) },
        });
      await confirm('U0INTRUDER', 'intruder');
      const refused = await h.slack.waitForResponse((r) => r.id === 'intruder');
      expect(JSON.stringify(refused.body)).toMatch(/Refused/);
      expect(await h.service.deps.queues.restore.count()).toBe(before);

      await confirm(ADMIN, 'admin');
      const confirmed = await h.slack.waitForResponse((r) => r.id === 'admin');
      const jobId = jobIdOf((confirmed.body as { text?: string }).text) ?? '';
      await channelMessage(h, jobId, /Restored into/);
      expect(await count(h.source.url, 'select count(*) as n from shop.order_items')).toBe(7500);
      expect(await count(h.source.url, "select count(*) as n from shop.products where name like '%(edited)'")).toBe(productsBefore);

      // The button works once.
      await confirm(ADMIN, 'again');
      expect(JSON.stringify((await h.slack.waitForResponse((r) => r.id === 'again')).body)).toMatch(/expired or was already used/);
      const records = await h.service.deps.storage.listRecords('restore', 'shop');
      expect(records[0]).toMatchObject({ database: h.source.name, requestedBy: { userId: ADMIN } });
    });

    /** `/restore <id> --into=<source>` by the admin, then the confirmation clicked: the job's id. */
    /** The confirmation `/restore <id> --into=<source>` answers: its text and its Replace button's value. */
    async function askToReplace(backupId: string): Promise<{ warning: string; value: string }> {
      const reply = await slash(h, '/restore', `${backupId} --into=${h.source.name}`, { userId: ADMIN });
      const button = ((reply.body as { blocks?: Array<Record<string, unknown>> }).blocks ?? [])
        .flatMap((b) => (b.elements as Array<Record<string, unknown>> | undefined) ?? [])
        .find((e) => e.action_id === 'restore_into_confirm');
      return { warning: reply.text, value: String(button?.value) };
    }

    // `/restore drop` of a kept database by an admin: asked first, as the CLI asks for --yes (QA: Slack dropped it at
    // once); the answer to the click on "Drop" or "Keep it".
    async function clickDrop(keptAs: string, action_id: string, responseId: string): Promise<string> {
      const asked = await slash(h, '/restore', `drop ${keptAs}`, { userId: ADMIN });
      expect(asked.text).toBe(
        `:warning: \`${keptAs}\` is a database as it was before a replacement: the only copy of whatever was written to it after the backup. Drop it?`,
      );
      const button = ((asked.body as { blocks?: Array<Record<string, unknown>> }).blocks ?? [])
        .flatMap((b) => (b.elements as Array<Record<string, unknown>> | undefined) ?? [])
        .find((e) => e.action_id === action_id);
      expect(button?.value).toBe(keptAs);
      await click(h, { userId: ADMIN, messageTs: '1700000000.000300', responseId, action: { type: 'button', action_id, value: keptAs } });
      return ((await h.slack.waitForResponse((r) => r.id === responseId)).body as { text?: string }).text ?? '';
    }

    async function clickReplace(value: string, responseId: string): Promise<string> {
      await click(h, { userId: ADMIN, messageTs: '1700000000.000200', responseId, action: { type: 'button', action_id: 'restore_into_confirm', value } });
      const confirmed = await h.slack.waitForResponse((r) => r.id === responseId);
      return (confirmed.body as { text?: string }).text ?? '';
    }

    async function replaceSource(backupId: string, responseId: string): Promise<{ warning: string; jobId: string }> {
      const { warning, value } = await askToReplace(backupId);
      return { warning, jobId: jobIdOf(await clickReplace(value, responseId)) ?? '' };
    }

    // This job's staging database only: other test files replace databases on the same server meanwhile.
    const swapLeftovers = async (jobId: string) =>
      await count(
        inject('pgUrl'),
        `select count(*) as n from pg_database where datname = '${stagingName(jobId)}' or datname like '${h.source.name}\\_replaced\\_%'`,
      );

    async function restoreJobCompleted(jobId: string): Promise<void> {
      const deadline = Date.now() + 30_000;
      for (;;) {
        const state = await (await h.service.deps.queues.restore.getJob(jobId))?.getState();
        if (state === 'completed') return;
        if (Date.now() > deadline) throw new Error(`restore job ${jobId} still ${state} after 30 s`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }

    it('replaces the whole database after a confirmation that says what is lost: restored and verified beside it, swapped, the old one kept', async () => {
      const backup = await takeBackup();
      const atBackup = await fingerprint(h.source.url);
      await runSql(h.source.url, "DELETE FROM shop.order_items WHERE line_no = 2; UPDATE shop.customers SET full_name = 'changed after the backup'");
      const changed = await fingerprint(h.source.url);
      expect(changed.tables).not.toEqual(atBackup.tables);
      // An application still connected: its session is ended by the swap.
      const app = new pg.Client({ connectionString: h.source.url });
      app.on('error', () => undefined);
      await app.connect();

      // A confirmation shown first and left unclicked: it describes the database as it is now.
      const stale = await askToReplace(backup.backupId);
      const { warning, jobId } = await replaceSource(backup.backupId, 'replace');
      const server = new URL(inject('pgUrl'));
      expect(warning).toMatch(
        new RegExp(
          `replace\\* the database \`${h.source.name}\` on ${server.hostname}:${server.port} \\([\\d.]+ [KMG]B, 1 open connection, which will be ended\\)`,
        ),
      );
      // Its time as every time the bot shows in Slack: in each reader's zone, the configured one as the fallback.
      const at = slackDate(backup.startedAt, h.config.timezone);
      expect(at).toMatch(/^<!date\^\d+\^\{date_short_pretty\} \{time\}\|\w{3} \d{4}-\d\d-\d\d \d\d:\d\d UTC[+-]\d\d:\d\d>$/);
      expect(warning).toContain(`taken ${at}: *everything written to ${h.source.name} after ${at} is lost.*`);
      // The copy is restored beside the live database: the disk it needs on that server, said before anyone clicks.
      expect(warning).toContain(`*Disk:* the copy needs about ${formatBytes(backup.database.sizeBytes)} free on that server`);
      const msg = await channelMessage(h, jobId, /Restored the whole database/, 120_000);
      const shown = JSON.stringify(msg.blocks);
      expect(shown).toMatch(new RegExp(`${h.source.name} now holds the backup, verified`));
      // When the live name changed hands, to the second (QA: the verdict gave the restore's time alone).
      expect(msg.text ?? '').toMatch(/^Restored the whole database into /);
      expect(shown).toMatch(
        new RegExp(
          `into \`${h.source.name}\` in [^;]+; swapped in as ${h.source.name} at \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d UTC \\(${h.source.name} refused connections for \\d+( ms|\\.\\d s) before it, its sessions ended: what they wrote until then is in the kept copy\\)`,
        ),
      );
      const keptAs = new RegExp(`kept as (${h.source.name}_replaced_\\d{8}t\\d{6})`).exec(shown)?.[1] ?? '';
      // Clicked after the replacement, the older confirmation replaces nothing: the fresh copy is not moved aside.
      // The verdict is posted before its job is marked completed: wait for that, so the counts compared are settled.
      await restoreJobCompleted(jobId);
      const jobs = await h.service.deps.queues.restore.getJobCounts();
      expect(await clickReplace(stale.value, 'replace-stale')).toBe(
        `\`${h.source.name}\` is not the database this confirmation described: it was replaced or recreated since (another replacement ran first, or by hand). Nothing was changed; run \`/restore ${backup.backupId} --into=${h.source.name}\` again to see what it holds now.`,
      );
      expect(await h.service.deps.queues.restore.getJobCounts()).toEqual(jobs);
      expect(keptAs).not.toBe('');

      // By plain SQL, not the bot's checks: the name now holds the backup, owners and grants included, and the
      // database it replaced holds what was written after it.
      const now = await fingerprint(h.source.url);
      expect(now.tables).toEqual(atBackup.tables);
      expect(now.definitions).toEqual(atBackup.definitions);
      expect(now.settings).toEqual(atBackup.settings);
      const keptUrl = inject('pgUrl').replace(/\/[^/]*$/, `/${keptAs}`);
      expect((await fingerprint(keptUrl)).tables).toEqual(changed.tables);
      await expect(app.query('select 1')).rejects.toThrow();
      await app.end().catch(() => undefined);
      const [record] = await h.service.deps.storage.listRecords('restore', 'shop');
      expect(record).toMatchObject({ passed: true, database: h.source.name, selection: { into: h.source.name, created: false } });
      // The kept database is listed as what the database was; only an admin may drop it.
      expect((await slash(h, '/restore', 'list')).text).toMatch(
        new RegExp(`\`${keptAs}\` on .* what ${h.source.name} was before it was replaced by \`${backup.backupId}\``),
      );
      expect((await slash(h, '/restore', `drop ${keptAs}`)).text).toMatch(/Refused/);
      // An admin is asked first, as the CLI asks for --yes (QA: Slack dropped it at once); "Keep it" keeps it.
      expect(await clickDrop(keptAs, 'restore_keep_replaced', 'keep-replaced')).toBe(`Kept \`${keptAs}\`; nothing was dropped.`);
      expect(await count(inject('pgUrl'), `select count(*) as n from pg_database where datname = '${keptAs}'`)).toBe(1);
      expect(await clickDrop(keptAs, 'restore_drop_replaced', 'drop-replaced')).toMatch(new RegExp(`Dropped \`${keptAs}\``));
      // Asked again, it is said to be gone, not "not a database a restore made".
      expect((await slash(h, '/restore', `drop ${keptAs}`, { userId: ADMIN })).text).toBe(
        `:warning: \`${keptAs}\` is not on its server any more (dropped already?); nothing was dropped.`,
      );
      expect(await swapLeftovers(jobId)).toBe(0);
    }, 180_000);

    it('a second replacement confirmed while one runs is refused, naming the one running; it never claims to have started (QA)', async () => {
      const other = await takeBackup();
      const first = await askToReplace(good.backupId);
      const second = await askToReplace(other.backupId);
      const firstJob = jobIdOf(await clickReplace(first.value, 'replace-first')) ?? '';
      expect(firstJob).not.toBe('');
      // Before: "Confirmed …: replacing … with `<other>` …, job `<the first job>`": merged into the first, which restores the other backup.
      const server = new URL(inject('pgUrl'));
      expect(await clickReplace(second.value, 'replace-second')).toBe(
        `:no_entry: Another restore into \`${h.source.name}\` on ${server.hostname}:${server.port} is queued or running: job \`${firstJob}\` from \`${good.backupId}\` (asked by <@${ADMIN}>). Nothing was started and this confirmation is used up; once its verdict is posted, run \`/restore\` again if it is still needed.`,
      );
      const msg = await channelMessage(h, firstJob, /Restored the whole database/, 120_000);
      const keptAs = new RegExp(`kept as (${h.source.name}_replaced_\\d{8}t\\d{6})`).exec(JSON.stringify(msg.blocks))?.[1] ?? '';
      await restoreJobCompleted(firstJob);
      expect(await clickDrop(keptAs, 'restore_drop_replaced', `drop-${keptAs}`)).toMatch(new RegExp(`Dropped \`${keptAs}\``));
      expect(await swapLeftovers(firstJob)).toBe(0);
    }, 180_000);

    it('a backup of the database running when it is replaced runs again on the restored database, and pages nobody (QA, review)', async () => {
      // A backup that waits on a lock an application holds: still running when the swap ends every session.
      const locker = new pg.Client({ connectionString: h.source.url });
      locker.on('error', () => undefined);
      await locker.connect();
      await locker.query('BEGIN; LOCK TABLE shop.orders IN ACCESS EXCLUSIVE MODE');
      const backupJob = jobIdOf((await slash(h, '/backup', 'now')).text) ?? '';
      const dumping = async () =>
        count(inject('pgUrl'), `select count(*) as n from pg_stat_activity where datname = '${h.source.name}' and wait_event_type = 'Lock'`);
      for (const end = Date.now() + 30_000; (await dumping()) === 0 && Date.now() < end; ) await new Promise((r) => setTimeout(r, 50));
      const pages = h.pd.events.length;
      const { warning, value } = await askToReplace(good.backupId);
      expect(warning).toContain(
        `A backup of shop (job \`${backupJob}\`) is running now. If it still is when the swap comes (after the restore and its checks), the swap ends it and it runs again on the restored database; nobody is paged.`,
      );
      const clickedAt = Date.now();
      const restoreJob = jobIdOf(await clickReplace(value, 'replace-under-backup')) ?? '';
      const verdict = await channelMessage(h, restoreJob, /Restored the whole database/, 120_000);
      const keptAs = new RegExp(`kept as (${h.source.name}_replaced_\\d{8}t\\d{6})`).exec(JSON.stringify(verdict.blocks))?.[1] ?? '';
      expect(JSON.stringify(verdict.blocks)).toContain(
        `A backup of shop was running at the swap (job \`${backupJob}\`): the swap ended it, unless it had just finished; it runs again on the restored database, and pages nobody.`,
      );
      // Before: "The connection to the database server … was lost during the backup; check the server's log", and a page.
      const backup = await channelMessage(h, backupJob, /succeeded/, 60_000);
      expect(JSON.stringify(backup.history.map((x) => x.blocks))).toContain(
        `starting again: the replacement of ${h.source.name} (restore job ${restoreJob}) ended its first attempt when it swapped the databases; it backs up the restored database (the one replaced is kept as ${keptAs})`,
      );
      // The backup it then took is of the restored database: begun after the swap.
      const [newest] = await h.service.deps.storage.list('shop');
      expect(Date.parse(newest?.startedAt ?? '')).toBeGreaterThanOrEqual(Math.floor(clickedAt / 1000) * 1000);
      await restoreJobCompleted(restoreJob);
      expect(h.pd.events.slice(pages).filter((e) => e.dedup_key === 'pg-backup-bot/shop/backup')).toEqual([]);
      await locker.end().catch(() => undefined);
      expect(await clickDrop(keptAs, 'restore_drop_replaced', `drop-${keptAs}`)).toMatch(new RegExp(`Dropped \`${keptAs}\``));
    }, 180_000);

    it('a replacement whose backup fails its checks leaves the database exactly as it was', async () => {
      const bad = await takeBackup();
      await runSql(h.source.url, "UPDATE shop.customers SET full_name = 'written after the bad backup' WHERE id < 10");
      const before = await fingerprint(h.source.url);
      const file = await open(artifactPath(h.backupDir, bad), 'r+');
      const { size } = await file.stat();
      await file.write(Buffer.from([0x00, 0xff, 0x00, 0xff]), 0, 4, Math.floor(size / 2));
      await file.close();

      const { jobId } = await replaceSource(bad.backupId, 'replace-bad');
      const msg = await channelMessage(h, jobId, /FAILED/, 120_000);
      expect(msg.text).toMatch(/artifact corrupted/);
      // Recovery work that fails during an incident pages, critical, under its own key.
      const trigger = await h.pd.waitFor((e) => e.event_action === 'trigger' && e.dedup_key === 'pg-backup-bot/shop/restore', 30_000);
      expect(trigger.payload?.severity).toBe('critical');
      expect(await fingerprint(h.source.url)).toEqual(before);
      expect(await swapLeftovers(jobId)).toBe(0);
      // Read back twice more, the same: marked damaged as a restore test would mark it, and refused from then on.
      const marked = await markedDamagedReply(msg);
      expect(marked).toMatch(new RegExp(`^:rotating_light: Backup \`${bad.backupId}\` is marked damaged \\(a restore found artifact corrupted: `));
      // What to use instead, at once: the newest backup not known to be bad.
      expect(marked).toMatch(/ The newest good backup of shop is `shop-\d{8}T\d{6}Z(-\d+)?` \(`\/backup list shop` shows them all\)\.$/);
      expect((await slash(h, '/restore', bad.backupId)).text).toContain(`Backup ${bad.backupId} cannot be restored: a restore found artifact corrupted`);
      await h.service.deps.storage.deleteBackup('shop', bad.backupId);
    }, 180_000);
  });
});
