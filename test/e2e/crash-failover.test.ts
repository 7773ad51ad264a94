import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, inject, it } from 'vitest';
import type { EphemeralPostgres } from '../../src/dev/ephemeral.ts';
import { archivedBases } from '../../src/postgres/pitr/wal-index.ts';
import { parseLsn } from '../../src/postgres/pitr/lsn.ts';
import { PartialWalStore } from '../../src/postgres/pitr/partial-store.ts';
import { startRecovered } from '../support/recovered-server.ts';
import { failoverKit } from './failover-kit.ts';
import { channelMessage, type Harness, slash } from './harness.ts';
import { type ShopPitr, startShopPitr } from './pitr-harness.ts';

/**
 * A crash failover to a standby that was behind: the old primary A wrote, and the bot received, WAL the standby B
 * never got, past a segment boundary; A crashes and B is promoted. pg_receivewal asks B to go on from its newest
 * file, on timeline 1 past the point where B left it, and B refuses at every start ("not in this server's
 * history"): the stream stayed down for good. Now the receiver sets the old timeline's partial segment aside and
 * streams timeline 2 from its slot; restore-pitr recovers B's history (A's rows B had, B's own), none of A's lost ones.
 */
let h: Harness;
let a: EphemeralPostgres;
let work: string;
let kit: ReturnType<typeof failoverKit>;
const shops: ShopPitr[] = [];

afterAll(async () => {
  for (const shop of shops) await failoverKit(shop).stopStandbys();
  for (const shop of shops) await shop.stop();
});

/** A shop of the case's own: a crashed primary cannot serve the next case. */
async function freshShop(tag: string) {
  const shop = await startShopPitr({ pgUrl: inject('pgUrl'), redisUrl: inject('redisUrl'), tag });
  shops.push(shop);
  ({ h, pg: a, work } = shop);
  kit = failoverKit(shop);
}

const walLine = async () => (await slash(h, '/backup', 'status')).text.split('(WAL archive)*')[1] ?? '';

describe('a crash failover to a standby that was behind', () => {
  // Where the standby stopped: within a segment (the old timeline streamed to the fork, then the new one), or at a
  // segment's start (the new timeline from that segment: pg_receivewal cannot start at the switch itself). The old
  // primary wrote past the fork's segment (refused: "not in this server's history"). The shape where it wrote only
  // into that segment and the fork is at its very start (no refusal: the server answers a start at the switch with
  // the next timeline, not a stream) is not made here: the standby then had a record of that segment as a rule.
  it.each([
    ['within a segment', true],
    ['at a segment’s start', false],
  ])('fork %s: sets the old primary’s WAL past it aside, streams the new timeline, and recovers along it', { timeout: 180_000 }, async (_, midSegment) => {
    await freshShop(midSegment ? 'crash-mid' : 'crash-start');
    const { until, asServer, sql, write, switchWal, archived, counts, restorePitr } = kit;
    await until('the shop stream', async () => ((await walLine()).includes(':white_check_mark: streaming') ? true : undefined));
    const asked = /`(base-backup-shop-[\w-]+)`/.exec((await slash(h, '/backup', 'now --physical shop')).text)?.[1];
    await channelMessage(h, asked as string, /succeeded/, 60_000);
    await write(a.url, 'A', 100);
    await archived(await switchWal(a.url));

    // B caught up, then cut off (stopped): what A writes from here on, only the bot receives.
    const b = await kit.startStandby();
    if (midSegment) await write(a.url, 'A', 20);
    // The insert position: the test clusters commit asynchronously, so the write position may lag the last commit.
    const [{ lsn }] = (await sql<{ lsn: string }>(a.url, 'SELECT pg_current_wal_insert_lsn()::text AS lsn')) as [{ lsn: string }];
    await until('the standby caught up', async () =>
      (await sql<{ ok: boolean }>(b.url, `SELECT pg_last_wal_replay_lsn() >= '${lsn}'::pg_lsn AS ok`))[0]?.ok ? true : undefined,
    );
    await b.ctl(['-m', 'fast', '-w', 'stop']);
    await write(a.url, 'lost', 30);
    await archived(await switchWal(a.url));
    // A moment on the old primary after the fork: 30 of the lost rows committed, the last 5 not yet.
    await new Promise((r) => setTimeout(r, 1100));
    const lostAt = new Date();
    await new Promise((r) => setTimeout(r, 1100));
    await write(a.url, 'lost', 5);
    // Received, and stored as a snapshot of the segment A was writing (rpo-monitor.ts: within seconds).
    const [{ end, seg }] = (await sql<{ end: string; seg: string }>(
      a.url,
      'SELECT pg_current_wal_insert_lsn()::text AS end, pg_walfile_name(pg_current_wal_insert_lsn()) AS seg',
    )) as [{ end: string; seg: string }];
    const partials = new PartialWalStore(h.backupDir, 'shop');
    await until('the old primary’s last WAL stored', async () =>
      (await partials.list()).find((e) => e.name === seg && parseLsn(e.walEnd) >= parseLsn(end)) ? true : undefined,
    );

    // A crashes; B comes up on A's port and is promoted.
    await asServer('pg_ctl', ['-D', a.dataDir, '-m', 'immediate', '-w', 'stop']);
    // Within a segment: the receiver is kept off the promoted server for a while (its replication refused), as when it
    // has not followed the promotion yet: the RPO must not read 0 (QA: the old primary's WAL stood at higher positions
    // than the promoted server's, and "the archive holds everything the server has written" was said).
    const hba = join(b.dataDir, 'pg_hba.conf');
    const original = await readFile(hba, 'utf8');
    if (midSegment) await writeFile(hba, `host replication all all reject\nlocal replication all reject\n${original}`);
    await kit.promoteOnPrimaryPort(b, { first: true });
    if (midSegment) {
      const rpo = await until('the RPO said unknown on timeline 2', async () => {
        const line = await walLine();
        return line.includes('the server writes timeline 2, and the archive holds none of it yet') ? line : undefined;
      });
      expect(rpo).toMatch(/RPO: unknown since/);
      await writeFile(hba, original);
      await b.ctl(['reload']);
    }
    // Said while the receiver is counted down (its first 10 s running again).
    const said = await until('the divergence said', async () => {
      const line = await walLine();
      return line.includes('the promoted server left timeline 1 at') ? line : undefined;
    });
    expect(said).toMatch(
      /the promoted server left timeline 1 at [0-9A-F]+\/[0-9A-F]+, but the bot had received WAL the old primary wrote past that point \(written there, never replicated\)/,
    );
    expect(said).toMatch(/00000001[0-9A-F]{16}\.partial set aside in the spool's \.diverged directory; streaming goes on along the new timeline from the fork/);
    const aside = await readdir(join(h.backupDir, '_wal-spool', 'shop', '.diverged'));
    expect(aside).toEqual([expect.stringMatching(/^00000001[0-9A-F]{16}\.partial$/)]);
    // Found by the server's history, not by the refusal's English words (a server's lc_messages may be another language).
    expect(h.logs.filter((l) => l.includes('partial segment set aside')).map((l) => JSON.parse(l).found)).toContain('server history');

    // Timeline 2 is archived, and the window follows it from timeline 1's base backup.
    await write(a.url, 'B', 40);
    // Snapshots of the segment B is writing are taken, though the old primary's last snapshot stands at a higher
    // position on timeline 1 (review: none was, and the RPO read 0 while B's commits sat only in the spool).
    const [{ lsn: onB }] = (await sql<{ lsn: string }>(a.url, 'SELECT pg_current_wal_insert_lsn()::text AS lsn')) as [{ lsn: string }];
    const snap = await until('a snapshot of timeline 2', async () =>
      (await partials.list()).find((e) => e.name.startsWith('00000002') && parseLsn(e.walEnd) >= parseLsn(onB)),
    );
    expect(snap.name.startsWith('00000002')).toBe(true);
    const firstOn2 = await switchWal(a.url);
    expect(firstOn2.startsWith('00000002')).toBe(true);
    await archived(firstOn2, 90_000);
    await until('the stream up', async () => ((await walLine()).includes(':white_check_mark: streaming') ? true : undefined), 30_000);
    const list = (await slash(h, '/backup', 'list shop')).text;
    expect(list).toContain('(across the promotion to timeline 2');
    // From the promoted server's start: before it, timeline 1 answers, which holds what the old primary really had.
    expect(list).toMatch(
      /\(and from <!date[^>]+> to <!date[^>]+> on timeline 1, before the promotion; past [0-9A-F]+\/[0-9A-F]+, where the promoted server forked from it, the old primary wrote commits the new timeline never received: `pg-backup-bot restore-pitr shop --time=latest --timeline=1 --data-dir=DIR` recovers them\)/,
    );
    expect(list).not.toContain(':rotating_light:');
    // The channel is told once, with the way to the lost commits (QA: the failover's loss was said nowhere lasting,
    // and nothing was posted at the time).
    const told = await until('the promotion told', async () => {
      const m = [...h.slack.messages.values()].filter((x) => (x.text ?? '').includes('its server was promoted to timeline 2'));
      return m.length > 0 ? m : undefined;
    });
    expect(told).toHaveLength(1);
    expect(told[0]?.text).toMatch(/^:warning: shop: its server was promoted to timeline 2, forked from timeline 1 at [0-9A-F]+\/[0-9A-F]+ \(its history file/);
    expect(told[0]?.text).toContain('any commit in it is missing from the live database');
    expect(told[0]?.text).toMatch(
      /timeline 1 is recoverable from .+ UTC to .+ UTC\. pg-backup-bot restore-pitr shop --time=latest --timeline=1 --data-dir=DIR recovers/,
    );

    // restore-pitr latest: B's history, from timeline 1's base backup along timeline 2.
    const [onTl1] = await archivedBases(h.backupDir, 'shop');
    const dataDir = join(work, 'recovered');
    const run = await restorePitr('latest', dataDir);
    expect(run.exitCode, run.stderr).toBe(0);
    expect(run.stdout).toContain(`Laid out base backup ${onTl1?.id}`);
    const server = await startRecovered(dataDir, [h.backupDir, work]);
    try {
      expect(server.started.exitCode, await server.log()).toBe(0);
      await server.outOfRecovery();
      expect(await counts(server.url)).toEqual([
        { written_on: 'A', n: midSegment ? 120 : 100 },
        { written_on: 'B', n: 40 },
      ]);
    } finally {
      await server.stop();
    }

    // What the old primary wrote that the promoted server never got: recovered along timeline 1, asked for. The 30
    // rows in the segment it completed are archived whole, the last 5 in the snapshot of its last segment.
    const lostDir = join(work, 'lost');
    const lost = await restorePitr('latest', lostDir, '--timeline=1');
    expect(lost.exitCode, lost.stderr).toBe(0);
    expect(lost.stdout).toContain('It recovers along timeline 1, as asked (--timeline), not the newest one the archive holds.');
    const old = await startRecovered(lostDir, [h.backupDir, work]);
    try {
      expect(old.started.exitCode, await old.log()).toBe(0);
      await old.outOfRecovery();
      const rows = await counts(old.url);
      expect(rows.find((r) => r.written_on === 'A')?.n).toBe(midSegment ? 120 : 100);
      expect(rows.find((r) => r.written_on === 'B')).toBeUndefined();
      expect(rows.find((r) => r.written_on === 'lost')?.n).toBe(35);
    } finally {
      await old.stop();
    }

    // A moment on the old primary after the fork, asked for by time alone: before timeline 2's window, so along
    // timeline 1, and said to be the old primary's history (QA: it recovered lost rows with no word of it).
    const thenDir = join(work, 'then');
    const then = await restorePitr(lostAt.toISOString(), thenDir);
    expect(then.exitCode, then.stderr).toBe(0);
    expect(then.stdout).toContain('It recovers along timeline 1, the history before the promotion to timeline 2');
    const at = await startRecovered(thenDir, [h.backupDir, work]);
    try {
      expect(at.started.exitCode, await at.log()).toBe(0);
      await at.outOfRecovery();
      expect((await counts(at.url)).find((r) => r.written_on === 'lost')?.n).toBe(30);
    } finally {
      await at.stop();
    }
  });
});
