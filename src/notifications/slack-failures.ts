import type { RedisConnection } from '../redis-client.ts';

/**
 * Channel posts Slack refused, counted per answer in Redis (`<prefix>:slack:post-failures`, a hash) by every process
 * that posts (WatchedNotifier), and exported by `/metrics` as `pgbb_slack_post_failures_total` (their sum): a third way to
 * hear that the channel is not told, beside the page and the logs (an earlier note: no /metrics series for it).
 */
export interface SlackFailures {
  record(answer: string): Promise<void>;
  counts(): Promise<Record<string, number>>;
}

export const slackFailuresKey = (prefix: string) => `${prefix}:slack:post-failures`;

export function slackFailures(redis: Pick<RedisConnection, 'hincrby' | 'hgetall'>, prefix: string): SlackFailures {
  return {
    async record(answer) {
      await redis.hincrby(slackFailuresKey(prefix), answer, 1);
    },
    async counts() {
      const all = await redis.hgetall(slackFailuresKey(prefix));
      return Object.fromEntries(Object.entries(all).map(([k, v]) => [k, Number(v) || 0]));
    },
  };
}

/**
 * Slack's answer as a label of few values: its API error (`channel_not_found`), else the Web API client's own code
 * (`slack_webapi_rate_limited_error`, `slack_webapi_request_error`: no answer), else `other`.
 */
export function slackAnswer(err: unknown): string {
  const e = err as { data?: { error?: unknown }; code?: unknown } | null;
  const api = e?.data?.error;
  if (typeof api === 'string' && /^[a-z_]{1,60}$/.test(api)) return api;
  const code = e?.code;
  return typeof code === 'string' && /^[a-z_]{1,60}$/.test(code) ? code : 'other';
}
