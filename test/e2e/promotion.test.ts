import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { EphemeralPostgres } from '../../src/dev/ephemeral.ts';
import { archivedBases } from '../../src/postgres/pitr/wal-index.ts';
import { PartialWalStore } from '../../src/postgres/pitr/partial-store.ts';
import { parseLsn } from '../../src/postgres/pitr/lsn.ts';
import { startRecovered } from '../support/recovered-server.ts';
import { channelMessage, type Harness, jobIdOf, slash } from './harness.ts';
import { failoverKit } from './failover-kit.ts';
import { type ShopPitr, startShopPitr } from './pitr-harness.ts';

/**
 * A real failover, as on-call meets it: primary A streamed by the bot (its slot, a base backup, rows), a streaming
 * standby B of A, A stopped, B started on A's port (the target's URL now reaches it) and promoted: B writes timeline 2
 * and has no copy of the bot's slot. The bot resumes streaming from B and archives timeline 2 with its history file;
 * the window follows the promotion from timeline 1's base backup, so nothing pages; restore-pitr recovers a server
 * holding the rows written on A before and on B after the promotion, from that base backup along timeline 2, and,
 * once a base backup was taken on timeline 2, a moment on A before the failover.
 */
let h: Harness;
let a: EphemeralPostgres;
let slot: string;
let work: string;
let shop: ShopPitr | undefined;
let kit: ReturnType<typeof failoverKit>;

beforeAll(async () => {
  shop = await startShopPitr({ pgUrl: inject('pgUrl'), redisUrl: inject('redisUrl'), tag: 'promo' });
  ({ h, pg: a, work, slot } = shop);
  kit = failoverKit(shop);
}, 60_000);

afterAll(async () => {
  await kit?.stopStandbys();
  await shop?.stop();
});

const pages = (action: string) => h.pd.events.filter((e) => e.dedup_key === 'pg-backup-bot/shop/wal-gap' && e.event_action === action);
const healthRun = async () => {
  const job = await h.service.deps.queues.health.add('health', {});
  await kit.until('the health run', async () => (['completed', 'failed'].includes(await job.getState()) ? true : undefined));
};
const status = async () => (await slash(h, '/backup', 'status')).text;

const walLine = async () => (await status()).split('(WAL archive)*')[1] ?? '';

describe('a promotion: the primary fails over to its standby', () => {
  it('streams timeline 2 from the promoted standby, follows the promotion from the old base backup, and restore-pitr recovers rows from both sides', {
    timeout: 180_000,
  }, async () => {
    const { until, asServer, sql, write, switchWal, store, names, archived, counts, restorePitr } = kit;
    // 1. The primary, streamed by the bot, with a base backup and rows after it archived.
    await until('the shop stream', async () => ((await walLine()).includes(`(slot \`${slot}\`): :white_check_mark: streaming`) ? true : undefined));
    const asked = /`(base-backup-shop-[\w-]+)`/.exec((await slash(h, '/backup', 'now --physical shop')).text)?.[1];
    await channelMessage(h, asked as string, /succeeded/, 60_000);
    await write(a.url, 'A', 100);
    await archived(await switchWal(a.url));
    // A moment on A before the failover: 100 rows committed, the next 50 not yet (step 6 recovers to it), with a
    // whole timeline-1 segment archived past it. Timeline 1's window ends at its last segment or snapshot archived:
    // what A wrote after that up to the switch reaches the archive only inside timeline 2's first segment, which
    // recovery along timeline 1 does not read (CI: a moment 0.15 s past the last one was refused).
    await new Promise((r) => setTimeout(r, 1100));
    const onA = new Date();
    await new Promise((r) => setTimeout(r, 1100));
    await sql(a.url, "SELECT pg_logical_emit_message(false, 'pgbb-test', 'past the moment')");
    await archived(await switchWal(a.url));

    // 2. A streaming standby, caught up with rows written on A after it was made; then the failover: A stops, B comes
    // up on A's port (the target's URL now reaches it) and is promoted.
    const b = await kit.startStandby();
    await write(a.url, 'A', 50);
    const [{ lsn: primaryAt }] = (await sql<{ lsn: string }>(a.url, 'SELECT pg_current_wal_lsn()::text AS lsn')) as [{ lsn: string }];
    await until('the standby caught up', async () =>
      (await sql<{ ok: boolean }>(b.url, `SELECT pg_last_wal_replay_lsn() >= '${primaryAt}'::pg_lsn AS ok`))[0]?.ok ? true : undefined,
    );
    expect(await sql(b.url, 'SELECT slot_name FROM pg_replication_slots')).toEqual([]);
    await asServer('pg_ctl', ['-D', a.dataDir, '-m', 'fast', '-w', 'stop']);
    // While no server answers, the stream is said to be down, and why.
    await until('the stream down', async () =>
      (await walLine()).includes('WAL stream DOWN') && (await walLine()).includes('the server is not reachable on the replication URL') ? true : undefined,
    );
    await kit.promoteOnPrimaryPort(b);
    // The checkpoint's timeline moves with the end-of-recovery checkpoint, which a promotion requests and does not
    // wait for: under load it read 1 for a moment (CI run of f01453b).
    const tli = await until('timeline 2 in the checkpoint', async () => {
      const [row] = await sql<{ tli: number }>(a.url, 'SELECT timeline_id AS tli FROM pg_control_checkpoint()');
      return row?.tli === 2 ? row.tli : undefined;
    });
    expect(tli).toBe(2);

    // 3. Rows on B; the bot streams from it on its own (its slot created there: PostgreSQL 15 copies none to a
    // standby) and archives timeline 2, its history file included.
    await write(a.url, 'B', 70);
    const firstOn2 = await switchWal(a.url);
    expect(firstOn2.startsWith('00000002')).toBe(true);
    await until('timeline 2 archived', async () => ((await names()).includes(firstOn2) ? true : undefined), 90_000);
    expect(await names()).toContain('00000002.history');
    // Streaming again, so the stream's line no longer gives "not reachable" as its current state: up, or (its first
    // 10 s, receiver.ts upAfterMs) restarted, with why it had stopped.
    expect(await walLine()).toMatch(
      /:white_check_mark: streaming since|WAL stream DOWN since .*; pg_receivewal started again at \d\d:\d\d:\d\d UTC \(it had stopped: .+\); counted as up once it has run 10 s/,
    );
    expect(await sql(a.url, 'SELECT slot_name, active FROM pg_replication_slots')).toEqual([{ slot_name: slot, active: true }]);

    // The history file's record: where timeline 1 was left, at or after the last position A wrote that B received.
    const history = await store().entry('00000002.history');
    expect(history?.forks).toHaveLength(1);
    expect(history?.forks?.[0]?.timeline).toBe(1);
    expect(parseLsn(history?.forks?.[0]?.switchLsn as string)).toBeGreaterThanOrEqual(parseLsn(primaryAt));

    // 4. The window follows the promotion from timeline 1's base backup (lane.ts): nothing is broken, so nothing
    // pages and no base backup is started; the window says it crosses the promotion.
    await healthRun();
    const list = (await slash(h, '/backup', 'list shop')).text;
    expect(list).toContain('• *shop*: recoverable to any moment from');
    expect(list).toContain('(across the promotion to timeline 2: recovery follows its history file from a base backup taken on timeline 1)');
    expect(list).not.toContain(':rotating_light:');
    expect(list).not.toContain('before the promotion');
    expect(pages('trigger')).toEqual([]);
    expect([...h.slack.messages.values()].filter((m) => (m.text ?? '').includes('timeline 2 without a base backup'))).toEqual([]);
    const jobs = await h.service.deps.queues.baseBackup.getJobs(['completed', 'failed', 'active', 'waiting', 'delayed']);
    expect(jobs.filter((j) => j.data.label?.startsWith('after'))).toEqual([]);
    // The channel is told once, by whichever check saw it first (the WAL worker asks for one when timeline 2's first
    // segment is archived), and not again by the next health run.
    const told = () => [...h.slack.messages.values()].filter((m) => (m.text ?? '').includes('its server was promoted to timeline 2'));
    expect(told().map((m) => m.text)).toEqual([
      expect.stringMatching(
        /^:twisted_rightwards_arrows: shop: its server was promoted to timeline 2, which left timeline 1 at [0-9A-F]+\/[0-9A-F]+ \(its history file archived at .+ UTC\)\. The WAL archive follows it: recoverable to any moment from .+ \(across the promotion to timeline 2: .+\)\. No WAL of timeline 1 past that point reached the archive\.\nUntil a base backup is taken on timeline 2, .+ \/backup now --physical shop takes one now/,
      ),
    ]);
    await healthRun();
    expect(told()).toHaveLength(1);
    // A planned failover diverges from nothing: no file was set aside (second reader: nothing showed a healthy stream
    // was not taken for a crash failover, now that the server's history is asked after every receiver failure).
    expect(h.logs.filter((l) => l.includes('partial segment set aside'))).toEqual([]);
    await expect(readdir(join(h.backupDir, '_wal-spool', 'shop', '.diverged'))).rejects.toThrow(/ENOENT/);
    // The stream is said to be up again once it has run 10 s (receiver.ts upAfterMs).
    await until('the stream up', async () => ((await walLine()).includes(':white_check_mark: streaming') ? true : undefined), 30_000);

    // Rows on B left in the segment being written (a quiet server): stored as a partial snapshot of timeline 2's
    // segment, as on any server; the old timeline's last .partial, which pg_receivewal leaves in the spool at the
    // switch, must not stand in for it.
    await write(a.url, 'B', 20);
    const [{ lsn: lastOnB, seg }] = (await sql<{ lsn: string; seg: string }>(
      a.url,
      'SELECT pg_current_wal_insert_lsn()::text AS lsn, pg_walfile_name(pg_current_wal_insert_lsn()) AS seg',
    )) as [{ lsn: string; seg: string }];
    const partials = new PartialWalStore(h.backupDir, 'shop');
    const snapshot = await until(
      `a partial snapshot of ${seg} reaching ${lastOnB}`,
      async () => (await partials.list()).find((e) => e.name === seg && parseLsn(e.walEnd) >= parseLsn(lastOnB)),
      30_000,
    );
    expect(snapshot.name.startsWith('00000002')).toBe(true);

    // 5. restore-pitr to the newest moment, before any base backup was taken on timeline 2: timeline 1's base backup,
    // recovered along timeline 2 (the rows from A before the promotion and from B after it, the last 20 from the
    // partial snapshot). Before, everything B wrote was out of reach until the bot's base backup finished.
    const [onTl1] = await archivedBases(h.backupDir, 'shop');
    const dataDir = join(work, 'recovered');
    const run = await restorePitr('latest', dataDir);
    expect(run.exitCode, run.stderr).toBe(0);
    expect(run.stdout).toContain(`Laid out base backup ${onTl1?.id}`);
    expect(run.stdout).toContain("It recovers to the archive's newest commit");
    expect(run.stdout).toContain("It recovers along timeline 2 (the promotion's history file, archived), from a base backup taken on timeline 1.");
    const server = await startRecovered(dataDir, [h.backupDir, work]);
    try {
      expect(server.started.exitCode, await server.log()).toBe(0);
      await server.outOfRecovery();
      expect(await counts(server.url)).toEqual([
        { written_on: 'A', n: 150 },
        { written_on: 'B', n: 90 },
      ]);
      expect(await server.log()).toContain('archive recovery complete');
    } finally {
      await server.stop();
    }

    // The PITR restore test takes the same way: timeline 1's base backup, the WAL along timeline 2.
    const tested = await slash(h, '/restore-test', 'pitr shop latest');
    const verdict = await channelMessage(h, jobIdOf(tested.text) as string, /PITR restore test of shop (passed|FAILED)/, 180_000);
    expect(verdict.text, JSON.stringify(verdict.blocks)).toMatch(/^PITR restore test of shop passed/);
    expect(JSON.stringify(verdict.blocks)).toContain(`fetched from ${onTl1?.id}'s start on, across the promotion to timeline 2, every sha256 matching`);

    // A base backup on timeline 2, asked for: it succeeds on the promoted server.
    const asked2 = /`(base-backup-shop-[\w-]+)`/.exec((await slash(h, '/backup', 'now --physical shop')).text)?.[1];
    const done = await channelMessage(h, asked2 as string, /succeeded/, 90_000);
    expect(JSON.stringify(done.blocks)).toContain('(timeline 2)');
    const bases = await archivedBases(h.backupDir, 'shop');
    expect(bases.map((x) => x.timeline)).toEqual([1, 2]);

    // 6. A moment before the promotion, after the new timeline's base backup exists: recovered from timeline 1's base
    // backup (once refused as "outside what the archive holds" while its base backup and WAL were kept).
    const beforeDir = join(work, 'before-promotion');
    const before = await restorePitr(onA.toISOString(), beforeDir);
    expect(before.exitCode, before.stderr).toBe(0);
    expect(before.stdout).toContain(`Laid out base backup ${bases[0]?.id}`);
    const old = await startRecovered(beforeDir, [h.backupDir, work]);
    try {
      expect(old.started.exitCode, await old.log()).toBe(0);
      await old.outOfRecovery();
      expect(await counts(old.url)).toEqual([{ written_on: 'A', n: 100 }]);
    } finally {
      await old.stop();
    }
  });
});
