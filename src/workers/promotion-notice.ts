import type { Config } from '../config.ts';
import type { WalArchiveFacts } from '../health/wal-types.ts';
import type { Logger } from '../logger.ts';
import { promotionNotice } from '../notifications/promotion-messages.ts';
import type { Notifier } from '../notifications/types.ts';
import type { RedisConnection } from '../redis-client.ts';
import { quietNotifier } from './quiet-notifier.ts';

export type PromotionNotice = (target: string, archive: WalArchiveFacts | undefined, at: Date, log: Logger) => Promise<boolean>;

/** Old news past this: a promotion found by a fresh install, or again after Redis lost the key, is not posted. */
const FRESH_MS = 24 * 3600_000;
const REMEMBER_S = 30 * 24 * 3600;
const CLAIM_S = 300;

/**
 * Tells the channel once, across every worker (SET NX on `<prefix>:promotion:<target>:<timeline>`), that a target's
 * server was promoted and the WAL archive follows it (health/wal-facts.ts `promotion`): with `followed` (recovered
 * from a base backup on the old timeline) or, after a crash failover, the old timeline's window holding what the new
 * server never received. Nothing pages for it: the window is whole. A promotion the archive cannot follow is not this
 * one's: `wal-gap` pages it. Checked by each health evaluation of the target, which the WAL worker asks for when the
 * first whole segment of the new timeline is archived. A post that fails is tried again at the next check.
 */
export function promotionNotices(d: { config: Pick<Config, 'queuePrefix'>; redis: RedisConnection; notifier: Notifier }): PromotionNotice {
  return async (target, a, at, log) => {
    const p = a?.promotion;
    if (!a || !p || a.switched || a.unreadable || !(a.followed || a.priorTimeline?.forkedAt)) return false;
    if (at.getTime() - p.at.getTime() > FRESH_MS) return false;
    const key = `${d.config.queuePrefix}:promotion:${target}:${p.timeline}`;
    // Claimed for the post's time only, then remembered: a worker that dies between the two leaves the claim to expire,
    // and a later check posts (second reader: it was lost for 30 days). A post that timed out after Slack took it is
    // posted again: rare, and better twice than never.
    if ((await d.redis.set(key, at.toISOString(), 'EX', CLAIM_S, 'NX')) !== 'OK') return false;
    log.warn({ target, promotion: p, forkedAt: a.priorTimeline?.forkedAt }, 'the server was promoted; the WAL archive follows it');
    const posted = await quietNotifier(d.notifier, log).post(promotionNotice(target, { ...a, promotion: p }));
    if (!posted) await d.redis.del(key).catch(() => undefined);
    else await d.redis.set(key, at.toISOString(), 'EX', REMEMBER_S);
    return posted !== undefined;
  };
}
