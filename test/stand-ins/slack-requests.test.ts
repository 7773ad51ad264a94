import { createHmac } from 'node:crypto';
import { createServer } from 'node:http';
import { App, LogLevel, verifySlackRequest, type SlashCommand } from '@slack/bolt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/dev/ephemeral.ts';
import { closeServer, listenLocal, readBody } from '../support/http-util.ts';
import { sendBlockAction, sendSlashCommand, signSlackRequest } from '../support/slack-requests.ts';
import { startSlackServer, type SlackServer } from '../support/slack-server.ts';

const TOKEN = 'xoxb-test-token';
const SECRET = 'test-signing-secret';

describe('signSlackRequest', () => {
  it("reproduces the signature of Slack's documented example request", () => {
    // The worked example from Slack's "Verifying requests from Slack" page.
    const body =
      'token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar' +
      '&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com' +
      '%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c';
    const headers = signSlackRequest('8f742231b10e8888abcd99yyyzzz85a5', body, 1531420618);
    expect(headers).toEqual({
      'x-slack-signature': 'v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503',
      'x-slack-request-timestamp': '1531420618',
      'content-type': 'application/x-www-form-urlencoded',
    });
  });

  it("passes Bolt's own verifier and matches a plain HMAC", () => {
    const body = 'command=%2Fbackup&text=prod';
    const now = Math.floor(Date.now() / 1000);
    const headers = signSlackRequest(SECRET, body, now);
    const reference = `v0=${createHmac('sha256', SECRET).update(`v0:${now}:${body}`).digest('hex')}`;
    expect(headers['x-slack-signature']).toBe(reference);
    expect(() =>
      verifySlackRequest({ signingSecret: SECRET, body, headers: { 'x-slack-signature': reference, 'x-slack-request-timestamp': now } }),
    ).not.toThrow();
  });
});

describe('sendSlashCommand', () => {
  it('form-encodes exactly the fields Slack sends, in order, and signs them', async () => {
    let seen: { headers: Record<string, unknown>; body: string } | undefined;
    const server = createServer((req, res) => {
      void readBody(req).then((b) => {
        seen = { headers: req.headers, body: b?.toString() ?? '' };
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"text":"ok"}');
      });
    });
    const port = await listenLocal(server);
    const reply = await sendSlashCommand({
      url: `http://127.0.0.1:${port}/slack/events`,
      signingSecret: SECRET,
      command: '/backup',
      text: 'prod now',
      userId: 'U1',
      userName: 'ana',
      channelId: 'C0INCIDENTS',
      responseUrl: 'http://127.0.0.1:1/response/x',
    });
    await closeServer(server);
    expect(reply).toMatchObject({ status: 200, body: { text: 'ok' } });
    const fields = new URLSearchParams(seen?.body);
    expect([...fields.keys()]).toEqual([
      'token',
      'team_id',
      'team_domain',
      'channel_id',
      'channel_name',
      'user_id',
      'user_name',
      'command',
      'text',
      'api_app_id',
      'is_enterprise_install',
      'response_url',
      'trigger_id',
    ]);
    expect(fields.get('text')).toBe('prod now');
    expect(fields.get('is_enterprise_install')).toBe('false');
    const ts = Number(seen?.headers['x-slack-request-timestamp']);
    expect(seen?.headers['x-slack-signature']).toBe(signSlackRequest(SECRET, seen?.body ?? '', ts)['x-slack-signature']);
  });
});

describe('a real Bolt app against the local Slack server', () => {
  let slack: SlackServer;
  let app: App;
  let url: string;
  const commands: SlashCommand[] = [];
  const clicks: Array<{ user: string; value: unknown }> = [];

  beforeAll(async () => {
    // Bolt calls auth.test as soon as it is constructed with a token: the server must be up first.
    slack = await startSlackServer({ botToken: TOKEN, channels: { '#incidents': 'C0INCIDENTS' } });
    app = new App({ token: TOKEN, signingSecret: SECRET, clientOptions: { slackApiUrl: slack.url }, logLevel: LogLevel.ERROR });
    app.command('/backup', async ({ ack, command, respond, client }) => {
      commands.push(command);
      await ack({ response_type: 'ephemeral', text: `queued ${command.text}` });
      await respond({ text: 'started' });
      await client.chat.postMessage({ channel: command.channel_id, text: `backup of ${command.text} started` });
    });
    app.action('approve', async ({ ack, body }) => {
      await ack();
      if (body.type === 'block_actions')
        clicks.push({ user: body.user.id, value: body.actions[0] && 'value' in body.actions[0] ? body.actions[0].value : undefined });
    });
    const port = await freePort();
    await app.start(port);
    url = `http://127.0.0.1:${port}/slack/events`;
  });
  afterAll(async () => {
    await app.stop();
    await slack.close();
  });

  const command = (extra: { forge?: boolean; timestamp?: number } = {}) =>
    sendSlashCommand({
      url,
      signingSecret: SECRET,
      command: '/backup',
      text: 'prod',
      userId: 'U0ANA',
      userName: 'ana',
      channelId: 'C0INCIDENTS',
      responseUrl: slack.responseUrl('cmd-1'),
      ...extra,
    });

  it('acks a signed slash command, then respond() and chat.postMessage reach the server', async () => {
    const reply = await command();
    expect(reply).toMatchObject({ status: 200, body: { response_type: 'ephemeral', text: 'queued prod' } });
    expect(slack.calls.some((c) => c.method === 'auth.test' && c.response.ok === true)).toBe(true);
    expect((await slack.waitForResponse((r) => r.id === 'cmd-1')).body).toEqual({ text: 'started' });
    const post = await slack.waitFor((c) => c.method === 'chat.postMessage');
    expect(post.response).toMatchObject({ ok: true, channel: 'C0INCIDENTS' });
    expect(commands[0]).toMatchObject({ command: '/backup', text: 'prod', user_id: 'U0ANA', channel_id: 'C0INCIDENTS' });
  });

  it('refuses a forged signature and a stale timestamp with 401, running nothing', async () => {
    const before = commands.length;
    expect((await command({ forge: true })).status).toBe(401);
    expect((await command({ timestamp: Math.floor(Date.now() / 1000) - 6 * 60 })).status).toBe(401);
    expect(commands.length).toBe(before);
  });

  it('delivers a signed block action with the clicking user', async () => {
    const reply = await sendBlockAction({
      url,
      signingSecret: SECRET,
      userId: 'U0BEN',
      channelId: 'C0INCIDENTS',
      messageTs: '1700000000.000100',
      responseUrl: slack.responseUrl('act-1'),
      action: { action_id: 'approve', value: 'job-42' },
    });
    expect(reply.status).toBe(200);
    expect(clicks).toEqual([{ user: 'U0BEN', value: 'job-42' }]);
  });
});
