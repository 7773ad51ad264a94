import { escapeMrkdwn } from '../format.ts';
import type { PagerEvent } from './pagerduty-client.ts';
import type { ChannelMessage } from './types.ts';

/**
 * PagerDuty answered an event with 400 (or 404, 413): the event is refused for good, and the channel was already told
 * "PagerDuty paged". Said in the channel, with what to check, so nobody waits for a page that will never come.
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
