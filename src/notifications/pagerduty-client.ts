import type { Agent } from 'node:https';
import { event } from '@pagerduty/pdjs';
import { BotError } from '../errors.ts';

export type Severity = 'critical' | 'error' | 'warning' | 'info';

/** An Events API v2 event without its routing key: the key is a secret and is added only when sending. */
export interface PagerEvent {
  action: 'trigger' | 'resolve';
  dedupKey: string;
  summary: string;
  severity: Severity;
  source: string;
  component?: string;
  customDetails?: Record<string, unknown>;
  timestamp: string;
}

export type SendOutcome = { kind: 'accepted' } | { kind: 'rejected'; status: number; message: string } | { kind: 'retry'; reason: string };

export interface PagerDutyClient {
  send(e: PagerEvent): Promise<SendOutcome>;
}

/**
 * Events API v2 through @pagerduty/pdjs. pdjs builds `https://${server}/v2/enqueue`, so the server is the host
 * (and port) of PAGERDUTY_EVENTS_URL. pdjs resolves on 400/5xx (we read the status), retries only 429 itself, and
 * its requestTimeout aborts nothing — so we pass our own AbortSignal and turn its own timer off.
 */
export function createPagerDutyClient(options: { eventsUrl: string; routingKey: string; agent?: Agent; timeoutMs?: number }): PagerDutyClient {
  const server = new URL(options.eventsUrl).host;
  return {
    async send(e) {
      const data = {
        routing_key: options.routingKey,
        event_action: e.action,
        dedup_key: e.dedupKey,
        payload: {
          summary: e.summary.slice(0, 1024),
          source: e.source,
          severity: e.severity,
          timestamp: e.timestamp,
          ...(e.component ? { component: e.component } : {}),
          ...(e.customDetails ? { custom_details: e.customDetails } : {}),
        },
      };
      try {
        const res = await event({
          data,
          server,
          requestTimeout: 0,
          retryTimeout: 1000,
          signal: AbortSignal.timeout(options.timeoutMs ?? 15_000),
          ...(options.agent ? { agent: options.agent } : {}),
        } as Parameters<typeof event>[0]);
        if (res.status === 202) return { kind: 'accepted' };
        // 400: the event is invalid and retrying cannot heal it. 429 and 5xx: PagerDuty will take it later.
        if (res.status === 400 || res.status === 413 || res.status === 404) {
          return { kind: 'rejected', status: res.status, message: JSON.stringify(res.data).slice(0, 500) };
        }
        return { kind: 'retry', reason: `PagerDuty answered ${res.status}` };
      } catch (err) {
        return { kind: 'retry', reason: `PagerDuty unreachable: ${(err as Error).message}` };
      }
    },
  };
}

export function pagerUnavailable(reason: string): BotError {
  return new BotError('pagerduty_unavailable', `PagerDuty could not be reached (${reason}); the page will be retried.`);
}
