import { escapeMrkdwn, formatDuration } from '../format.ts';
import type { PagerEvent } from './pagerduty-client.ts';
import type { ChannelMessage } from './types.ts';

/**
 * PagerDuty answered an event with 400 (or 404, 413): the event is refused for good, and the channel was already told
 * "PagerDuty page queued". Said in the channel, with what to check, so nobody waits for a page that will never come.
 */
export function pagerRefusedMessage(event: PagerEvent, status: number, answer: string): ChannelMessage {
  const said = `PagerDuty answered ${status}: ${escapeMrkdwn(answer.slice(0, 300))}`;
  const check = 'Check PAGERDUTY_ROUTING_KEY: it must be the Events API v2 integration key of a PagerDuty service that still exists.';
  const text =
    event.action === 'trigger'
      ? `:rotating_light: PagerDuty refused a page: nobody was paged for \`${event.dedupKey}\` (${escapeMrkdwn(event.summary)}). ${said}. ${check} The bot pages this condition again the next time it starts failing.`
      : `:warning: PagerDuty refused to resolve \`${event.dedupKey}\`: its incident may still be open; resolve it in PagerDuty. ${said}. ${check}`;
  return { text, blocks: [{ type: 'section', text: { type: 'mrkdwn', text: text.slice(0, 3000) } }] };
}

/**
 * A page PagerDuty has not taken yet after minutes (`reason`: its last answer), or, `reason` null, has taken at last:
 * the channel was told "PagerDuty page queued" and must not take that for a page that reached anyone.
 */
export function pagerLateMessage(event: PagerEvent, reason: string | null, now: number): ChannelMessage {
  const waited = formatDuration(now - Date.parse(event.timestamp));
  const text =
    reason === null
      ? `:white_check_mark: PagerDuty took the page for \`${event.dedupKey}\` (${escapeMrkdwn(event.summary)}) after ${waited}.`
      : `:rotating_light: A page has waited ${waited} for PagerDuty, and nobody has been paged for \`${event.dedupKey}\` (${escapeMrkdwn(event.summary)}): PagerDuty's last answer was ${escapeMrkdwn(reason.slice(0, 300))}. It is sent again until PagerDuty takes it; whoever reads this, act on it meanwhile.`;
  return { text, blocks: [{ type: 'section', text: { type: 'mrkdwn', text: text.slice(0, 3000) } }] };
}
