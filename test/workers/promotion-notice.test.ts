import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { WalArchiveFacts } from '../../src/health/wal-types.ts';
import { promotionNotices } from '../../src/workers/promotion-notice.ts';
import { startWorkerKit, type WorkerKit } from './worker-kit.ts';

/**
 * The channel told once of a promotion the WAL archive follows (promotion-notice.ts), on real Redis and the strict
 * Slack stand-in: a planned one, a crash failover whose old primary went on past the fork, and what is not news.
 */
let kit: WorkerKit;

beforeAll(async () => {
  kit = await startWorkerKit({ pgUrl: inject('pgUrl'), redisUrl: inject('redisUrl') });
});

afterAll(async () => {
  await kit?.stop();
});

const now = new Date('2026-12-07T03:20:00Z');
const promotion = { timeline: 2, from: 1, switchLsn: '0/6000060', at: new Date('2026-12-07T03:14:07Z') };
const facts = (o: Partial<WalArchiveFacts>): WalArchiveFacts => ({
  baseBackups: 1,
  newestSegment: '000000020000000000000007',
  gaps: [],
  reachesNewest: true,
  window: { from: new Date('2026-12-06T01:00:00Z'), to: new Date('2026-12-07T03:19:30Z') },
  earlier: null,
  followed: { from: 1, to: 2 },
  promotion,
  ...o,
});
/** The facts without `followed`: a window on the new timeline's own base backup, or none that crosses the switch. */
const unfollowed = (o: Partial<WalArchiveFacts>): WalArchiveFacts => {
  const { followed: _, ...rest } = facts(o);
  return rest;
};
const posted = (target: string) => [...kit.slack.messages.values()].filter((m) => (m.text ?? '').includes(`${target}: its server was promoted`));

describe('promotionNotices', () => {
  it('tells of a planned promotion once, with the window it follows and how to shorten a recovery', async () => {
    const tell = promotionNotices({ config: kit.config, redis: kit.redis, notifier: kit.notifier });
    expect(await tell('planned', facts({}), now, kit.log)).toBe(true);
    expect(await tell('planned', facts({}), now, kit.log)).toBe(false);
    // Another worker's evaluator, the same Redis: still once.
    expect(await promotionNotices({ config: kit.config, redis: kit.redis, notifier: kit.notifier })('planned', facts({}), now, kit.log)).toBe(false);
    expect(posted('planned').map((m) => m.text)).toEqual([
      ':twisted_rightwards_arrows: planned: its server was promoted to timeline 2, which left timeline 1 at 0/6000060 (its history file archived at 2026-12-07 03:14:07 UTC). ' +
        'The WAL archive follows it: recoverable to any moment from 2026-12-06 01:00:00 UTC to 2026-12-07 03:19:30 UTC ' +
        '(across the promotion to timeline 2: recovery follows its history file from a base backup taken on timeline 1). No WAL of timeline 1 past that point reached the archive.\n' +
        "Until a base backup is taken on timeline 2, a recovery replays all WAL since the base backup taken on timeline 1: /backup now --physical planned takes one now (the schedule's next one otherwise).",
    ]);
  });

  it('after a crash failover, says the old primary went on past the fork, and how to recover what it wrote', async () => {
    const tell = promotionNotices({ config: kit.config, redis: kit.redis, notifier: kit.notifier });
    const priorTimeline = { from: new Date('2026-12-06T01:00:00Z'), to: new Date('2026-12-07T03:13:58Z'), timeline: 1, forkedAt: '0/6000060' };
    expect(await tell('crashed', facts({ priorTimeline }), now, kit.log)).toBe(true);
    const [m] = posted('crashed');
    expect(m?.text).toContain(':warning: crashed: its server was promoted to timeline 2, forked from timeline 1 at 0/6000060');
    expect(m?.text).toContain('any commit in it is missing from the live database');
    expect(m?.text).toContain(
      'timeline 1 is recoverable from 2026-12-06 01:00:00 UTC to 2026-12-07 03:13:58 UTC. pg-backup-bot restore-pitr crashed --time=latest --timeline=1 --data-dir=DIR recovers',
    );
    expect(m?.text).toContain('The WAL archive follows timeline 2: recoverable to any moment');
    // The mrkdwn shows the command as code.
    expect(JSON.stringify(m?.blocks)).toContain('`pg-backup-bot restore-pitr crashed --time=latest --timeline=1 --data-dir=DIR`');
  });

  it('is silent on what is not news: a switch wal-gap pages, a promotion over a day old, a window on the new timeline alone', async () => {
    const tell = promotionNotices({ config: kit.config, redis: kit.redis, notifier: kit.notifier });
    const switched = { timeline: 2, segment: '000000020000000000000007', at: promotion.at };
    expect(await tell('switched', unfollowed({ switched, reachesNewest: false }), now, kit.log)).toBe(false);
    expect(await tell('old', facts({}), new Date(promotion.at.getTime() + 25 * 3600_000), kit.log)).toBe(false);
    expect(await tell('own-base', unfollowed({}), now, kit.log)).toBe(false);
    expect(await tell('unreadable', facts({ unreadable: 'EACCES' }), now, kit.log)).toBe(false);
    expect(await tell('none', undefined, now, kit.log)).toBe(false);
    for (const t of ['switched', 'old', 'own-base', 'unreadable', 'none']) expect(posted(t)).toEqual([]);
  });

  it('a post Slack refused is tried again at the next check', async () => {
    const refused = promotionNotices({ config: kit.config, redis: kit.redis, notifier: kit.notifierFor('#deleted') });
    expect(await refused('retried', facts({}), now, kit.log)).toBe(false);
    expect(posted('retried')).toEqual([]);
    const tell = promotionNotices({ config: kit.config, redis: kit.redis, notifier: kit.notifier });
    expect(await tell('retried', facts({}), now, kit.log)).toBe(true);
    expect(posted('retried')).toHaveLength(1);
  });
});
