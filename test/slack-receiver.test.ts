import { request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { App, LogLevel } from '@slack/bolt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../src/logger.ts';
import { SlackEventsReceiver } from '../src/slack-receiver.ts';
import { sendBlockAction, sendEvent, sendSlashCommand, signSlackRequest } from './support/slack-requests.ts';

/**
 * The bot's receiver for Slack's HTTP requests (src/slack-receiver.ts) under a real Bolt app: what reaches a handler
 * and what is refused, as Bolt's own HTTPReceiver answers.
 */
const SECRET = 'receiver-test-signing-secret';

describe('SlackEventsReceiver', () => {
  let app: App;
  let url: string;
  let base: string;
  const seen: Array<{ kind: string; retryNum?: number | undefined }> = [];
  const warnings: string[] = [];

  beforeAll(async () => {
    const log = createLogger({
      level: 'info',
      destination: { write: (s: string) => warnings.push(String((JSON.parse(s) as { msg?: string }).msg)) },
    });
    app = new App({
      receiver: new SlackEventsReceiver({ signingSecret: SECRET, log }),
      token: 'xoxb-receiver-test',
      botId: 'B0TEST',
      botUserId: 'U0BOT',
      tokenVerificationEnabled: false,
      convoStore: false,
      logLevel: LogLevel.ERROR,
    });
    app.command('/backup', async ({ ack, command, context }) => {
      seen.push({ kind: `command ${command.text}`, retryNum: context.retryNum });
      if (command.text === 'silent') return; // never acks
      if (command.text === 'throw') throw new Error('handler failed');
      if (command.text === 'plain') await ack();
      else await ack({ response_type: 'ephemeral', text: `ok: ${command.text}` });
    });
    app.action('press', async ({ ack, body }) => {
      seen.push({ kind: `action ${(body as { actions: Array<{ value: string }> }).actions[0]?.value}` });
      await ack();
    });
    app.event('app_home_opened', async ({ event }) => {
      seen.push({ kind: `event ${event.user}` });
    });
    const server = (await app.start(0)) as Server;
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    url = `${base}/slack/events`;
  });

  afterAll(() => app?.stop());

  const slash = (text: string, extra: { forge?: boolean; timestamp?: number } = {}) =>
    sendSlashCommand({
      url,
      signingSecret: SECRET,
      command: '/backup',
      text,
      userId: 'U1',
      userName: 'one',
      channelId: 'C1',
      responseUrl: 'https://hooks.slack.invalid/x',
      ...extra,
    });

  it('hands a signed slash command to its handler and answers with its ack', async () => {
    expect(await slash('list')).toMatchObject({ status: 200, body: { response_type: 'ephemeral', text: 'ok: list' } });
    expect(await slash('plain')).toMatchObject({ status: 200, body: '' });
    expect(seen.map((s) => s.kind)).toEqual(expect.arrayContaining(['command list', 'command plain']));
  });

  it('hands interactive payloads and Events API callbacks to theirs', async () => {
    const action = await sendBlockAction({
      url,
      signingSecret: SECRET,
      userId: 'U2',
      channelId: 'C1',
      messageTs: '1.2',
      responseUrl: 'https://hooks.slack.invalid/y',
      action: { action_id: 'press', value: 'v1' },
    });
    expect(action.status).toBe(200);
    const event = await sendEvent({ url, signingSecret: SECRET, event: { type: 'app_home_opened', user: 'U3', channel: 'D3', tab: 'home' } });
    expect(event.status).toBe(200);
    await new Promise((r) => setTimeout(r, 50));
    expect(seen.map((s) => s.kind)).toEqual(expect.arrayContaining(['action v1', 'event U3']));
  });

  it('refuses forged, stale and unsigned requests with 401 and runs nothing', async () => {
    const before = seen.length;
    expect((await slash('forged', { forge: true })).status).toBe(401);
    expect((await slash('stale', { timestamp: Math.floor(Date.now() / 1000) - 6 * 60 })).status).toBe(401);
    const unsigned = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'command=%2Fbackup&text=x' });
    expect(unsigned.status).toBe(401);
    expect(seen.length).toBe(before);
    expect(warnings.filter((w) => w.startsWith('Failed to parse and verify the request data'))).toHaveLength(3);
  });

  it('answers 413 to a body over 4 MB, 400 to a malformed one, 404 elsewhere', async () => {
    const big = `text=${'a'.repeat(4 * 1024 * 1024 + 1)}`;
    const tooBig = await fetch(url, { method: 'POST', headers: { ...signSlackRequest(SECRET, big) }, body: big });
    expect(tooBig.status).toBe(413);
    const bad = '{not json';
    const malformed = await fetch(url, { method: 'POST', headers: { ...signSlackRequest(SECRET, bad), 'content-type': 'application/json' }, body: bad });
    expect(malformed.status).toBe(400);
    expect((await fetch(url)).status).toBe(404);
    expect((await fetch(`${base}/other`, { method: 'POST', body: 'x' })).status).toBe(404);
  });

  it('refuses a body too big before it ends, by its declared length or by the bytes so far, and closes the connection', async () => {
    /** A POST whose body is never finished: the answer can only come from the refusal. */
    const endless = (headers: Record<string, string>, firstBytes: number) =>
      new Promise<{ status: number; closed: Promise<void> }>((resolve, reject) => {
        const req = request(url, { method: 'POST', headers }, (res) => {
          res.resume();
          resolve({ status: res.statusCode ?? 0, closed: new Promise((done) => req.socket?.once('close', () => done())) });
        });
        req.on('error', () => undefined); // the server closes mid-body: expected
        setTimeout(() => {
          req.destroy();
          reject(new Error('no answer before the body ended'));
        }, 5_000).unref();
        if (firstBytes > 0) req.write(Buffer.alloc(firstBytes, 0x61));
        else req.flushHeaders();
      });
    const declared = await endless({ 'content-type': 'application/x-www-form-urlencoded', 'content-length': String(10 * 1024 ** 3) }, 0);
    expect(declared.status).toBe(413);
    await declared.closed;
    const streamed = await endless({ 'content-type': 'application/x-www-form-urlencoded', 'transfer-encoding': 'chunked' }, 4 * 1024 * 1024 + 10);
    expect(streamed.status).toBe(413);
    await streamed.closed;
  });

  it("answers Slack's SSL check unsigned and its URL verification with the challenge", async () => {
    const ssl = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'ssl_check=1&token=x' });
    expect(ssl.status).toBe(200);
    const challenge = JSON.stringify({ token: 'x', challenge: 'c-123', type: 'url_verification' });
    const verify = await fetch(url, {
      method: 'POST',
      headers: { ...signSlackRequest(SECRET, challenge), 'content-type': 'application/json' },
      body: challenge,
    });
    expect(await verify.json()).toEqual({ challenge: 'c-123' });
  });

  it("passes Slack's retry number on, answers 500 when a handler fails and 404 when none acks within 3 s", async () => {
    const body = new URLSearchParams({ command: '/backup', text: 'retried', user_id: 'U1', channel_id: 'C1', team_id: 'T1' }).toString();
    const retried = await fetch(url, {
      method: 'POST',
      headers: { ...signSlackRequest(SECRET, body), 'x-slack-retry-num': '2', 'x-slack-retry-reason': 'http_timeout' },
      body,
    });
    expect(retried.status).toBe(200);
    expect(seen.find((s) => s.kind === 'command retried')?.retryNum).toBe(2);
    expect((await slash('throw')).status).toBe(500);
    const silent = await slash('silent');
    expect(silent.status).toBe(404);
    expect(silent.ms).toBeGreaterThanOrEqual(3000);
  });
});
