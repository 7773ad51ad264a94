import { ErrorCode, WebClient, type WebAPIPlatformError } from '@slack/web-api';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startSlackServer, type SlackServer } from '../support/slack-server.ts';

const TOKEN = 'xoxb-test-token';
const CHANNELS = { '#incidents': 'C0INCIDENTS', backups: 'C0BACKUPS' };

/** The error code Slack answered, from the error web-api throws. */
async function slackError(p: Promise<unknown>): Promise<string> {
  const err = (await p.then(
    () => undefined,
    (e: unknown) => e,
  )) as WebAPIPlatformError | undefined;
  expect(err, 'the call should have failed').toBeDefined();
  expect(err?.code).toBe(ErrorCode.PlatformError);
  return String(err?.data.error);
}

describe('local Slack server', () => {
  let slack: SlackServer;
  let client: WebClient;
  beforeEach(async () => {
    slack = await startSlackServer({ botToken: TOKEN, channels: CHANNELS });
    client = new WebClient(TOKEN, { slackApiUrl: slack.url, retryConfig: { retries: 0 } });
  });
  afterEach(() => slack.close());

  describe('authentication', () => {
    it('rejects a wrong token with invalid_auth and records the call', async () => {
      const wrong = new WebClient('xoxb-wrong', { slackApiUrl: slack.url, retryConfig: { retries: 0 } });
      expect(await slackError(wrong.auth.test())).toBe('invalid_auth');
      expect(slack.calls).toMatchObject([{ method: 'auth.test', response: { ok: false, error: 'invalid_auth' } }]);
    });

    it('rejects a call without a token with not_authed', async () => {
      const res = await fetch(`${slack.url}chat.postMessage`, { method: 'POST', body: 'channel=C0INCIDENTS&text=hi' });
      expect(await res.json()).toEqual({ ok: false, error: 'not_authed' });
    });

    it('answers auth.test like Slack for the right token', async () => {
      const res = await client.auth.test();
      expect(res).toMatchObject({ ok: true, user_id: expect.stringMatching(/^U/), bot_id: expect.stringMatching(/^B/) });
    });
  });

  describe('chat.postMessage and chat.update through the real WebClient', () => {
    it('records a form-encoded post with blocks decoded, and answers with the channel ID and a ts', async () => {
      const blocks = [{ type: 'section', text: { type: 'mrkdwn', text: '*Backup started*' } }];
      const res = await client.chat.postMessage({ channel: '#incidents', text: 'Backup started', blocks });
      expect(res).toMatchObject({ ok: true, channel: 'C0INCIDENTS', ts: expect.stringMatching(/^\d{10}\.\d{6}$/) });
      expect(res.message?.text).toBe('Backup started');
      const call = slack.calls[0];
      // web-api 8 sends every call form-encoded, with objects such as blocks as JSON strings.
      expect(call?.contentType).toBe('application/x-www-form-urlencoded');
      expect(call?.body).toMatchObject({ channel: '#incidents', text: 'Backup started', blocks });
      expect(slack.messages.get(res.ts ?? '')).toMatchObject({ channel: 'C0INCIDENTS', text: 'Backup started', blocks, updates: 0 });
    });

    it('updates a message in place and keeps its earlier versions', async () => {
      const posted = await client.chat.postMessage({ channel: 'C0INCIDENTS', text: 'running' });
      const ts = posted.ts as string;
      await client.chat.update({ channel: 'C0INCIDENTS', ts, text: 'done', blocks: [{ type: 'divider' }] });
      const m = slack.messages.get(ts);
      expect(m).toMatchObject({ text: 'done', blocks: [{ type: 'divider' }], updates: 1 });
      expect(m?.history.map((v) => v.text)).toEqual(['running']);
    });

    it('threads a reply under its root, even when replying to a reply', async () => {
      const root = (await client.chat.postMessage({ channel: 'C0BACKUPS', text: 'root' })).ts as string;
      const reply = (await client.chat.postMessage({ channel: 'C0BACKUPS', text: 'r1', thread_ts: root })).ts as string;
      const second = await client.chat.postMessage({ channel: 'C0BACKUPS', text: 'r2', thread_ts: reply });
      expect(slack.messages.get(second.ts as string)?.thread_ts).toBe(root);
      expect(await slackError(client.chat.postMessage({ channel: 'C0BACKUPS', text: 'x', thread_ts: '1.000001' }))).toBe('invalid_thread_ts');
    });

    it('answers message_not_found for chat.update on an unknown ts or another channel', async () => {
      expect(await slackError(client.chat.update({ channel: 'C0INCIDENTS', ts: '1700000000.000100', text: 'x' }))).toBe('message_not_found');
      const ts = (await client.chat.postMessage({ channel: 'C0INCIDENTS', text: 'a' })).ts as string;
      expect(await slackError(client.chat.update({ channel: 'C0BACKUPS', ts, text: 'b' }))).toBe('message_not_found');
    });

    it('takes channel names in chat.postMessage but only IDs in chat.update, as Slack does', async () => {
      const ts = (await client.chat.postMessage({ channel: '#incidents', text: 'a' })).ts as string;
      expect(await slackError(client.chat.update({ channel: '#incidents', ts, text: 'b' }))).toBe('channel_not_found');
    });

    it('refuses a channel outside the configured map', async () => {
      expect(await slackError(client.chat.postMessage({ channel: '#random', text: 'hi' }))).toBe('channel_not_found');
      expect(await slackError(client.chat.postMessage({ channel: 'C0NOTHERE', text: 'hi' }))).toBe('channel_not_found');
    });
  });

  describe('message content rules', () => {
    it('needs text or blocks', async () => {
      expect(await slackError(client.chat.postMessage({ channel: 'C0INCIDENTS', text: '' }))).toBe('no_text');
    });

    it('refuses more than 50 blocks', async () => {
      const blocks = Array.from({ length: 51 }, () => ({ type: 'divider' }));
      expect(await slackError(client.chat.postMessage({ channel: 'C0INCIDENTS', text: 't', blocks }))).toBe('invalid_blocks');
    });

    it('refuses section text over 3000 characters and says where, as Slack does', async () => {
      const blocks = [{ type: 'section', text: { type: 'mrkdwn', text: 'x'.repeat(3001) } }];
      expect(await slackError(client.chat.postMessage({ channel: 'C0INCIDENTS', text: 't', blocks }))).toBe('invalid_blocks');
      expect(slack.calls.at(-1)?.response).toMatchObject({
        response_metadata: { messages: [expect.stringContaining('[json-pointer:/blocks/0/text/text]')] },
      });
    });

    it('refuses unknown block types, duplicate block ids and initial_options that match no option', async () => {
      const post = (blocks: unknown[]) => client.chat.postMessage({ channel: 'C0INCIDENTS', text: 't', blocks: blocks as never });
      expect(await slackError(post([{ type: 'sektion' }]))).toBe('invalid_blocks');
      expect(
        await slackError(
          post([
            { type: 'divider', block_id: 'a' },
            { type: 'divider', block_id: 'a' },
          ]),
        ),
      ).toBe('invalid_blocks');
      const option = (v: string) => ({ text: { type: 'plain_text', text: v }, value: v });
      const checkboxes = { type: 'checkboxes', action_id: 'c', options: [option('a')], initial_options: [option('b')] };
      expect(await slackError(post([{ type: 'actions', elements: [checkboxes] }]))).toBe('invalid_blocks');
    });

    it('accepts a JSON body with a bearer token', async () => {
      const res = await fetch(`${slack.url}chat.postMessage`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json; charset=utf-8' },
        body: JSON.stringify({ channel: 'C0INCIDENTS', blocks: [{ type: 'header', text: { type: 'plain_text', text: 'Hi' } }] }),
      });
      expect(await res.json()).toMatchObject({ ok: true, channel: 'C0INCIDENTS' });
    });
  });

  describe('ephemeral messages, waiting and rate limits', () => {
    it('records chat.postEphemeral for the user', async () => {
      const res = await client.chat.postEphemeral({ channel: 'C0INCIDENTS', user: 'U123ABC', text: 'queued job 42' });
      expect(res.ok).toBe(true);
      expect(slack.ephemerals).toMatchObject([{ channel: 'C0INCIDENTS', user: 'U123ABC', text: 'queued job 42' }]);
    });

    it('resolves waitFor when a matching call arrives later', async () => {
      const seen = slack.waitFor((c) => c.method === 'chat.postMessage' && c.body.text === 'later', 2000);
      const sent = new Promise((resolve) => setTimeout(resolve, 20)).then(() => client.chat.postMessage({ channel: 'C0INCIDENTS', text: 'later' }));
      expect((await seen).response).toMatchObject({ ok: true });
      expect((await sent).ok).toBe(true);
    });

    it('answers 429 with Retry-After when told to', async () => {
      slack.rateLimitNext(1, 7);
      const strict = new WebClient(TOKEN, { slackApiUrl: slack.url, retryConfig: { retries: 0 }, rejectRateLimitedCalls: true });
      const err = await strict.chat.postMessage({ channel: 'C0INCIDENTS', text: 'x' }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: ErrorCode.RateLimitedError, retryAfter: 7 });
      expect((await strict.chat.postMessage({ channel: 'C0INCIDENTS', text: 'x' })).ok).toBe(true);
    });
  });

  describe('response_url', () => {
    const respond = (url: string, body: unknown) => fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

    it('records posts, and answers used_url after five', async () => {
      const url = slack.responseUrl('cmd-1');
      for (let i = 0; i < 5; i += 1) expect((await respond(url, { text: `reply ${i}` })).status).toBe(200);
      const sixth = await respond(url, { text: 'one too many' });
      expect(sixth.status).toBe(404);
      expect(await sixth.json()).toEqual({ ok: false, error: 'used_url' });
      expect(slack.responses.filter((r) => r.status === 200).map((r) => r.body)).toHaveLength(5);
    });

    it('answers expired_url once expired', async () => {
      slack.expireResponseUrl('cmd-2');
      expect((await respond(slack.responseUrl('cmd-2'), { text: 'late' })).status).toBe(404);
    });
  });
});
