import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startHarness, type Harness } from './harness.ts';

let h: Harness;

beforeAll(async () => {
  h = await startHarness({ pgUrl: inject('pgUrl'), redisUrl: inject('redisUrl'), socketMode: true });
});

afterAll(async () => {
  await h?.stop();
});

describe('Socket Mode (SLACK_APP_TOKEN set)', () => {
  it('connects with the app token, answers /backup now through the socket, and still serves /healthz', async () => {
    const socket = h.slack.socketMode;
    if (!socket) throw new Error('the stand-in has no Socket Mode side');
    await socket.connected();
    expect(h.slack.calls.some((c) => c.method === 'apps.connections.open' && (c.response as { ok?: boolean }).ok)).toBe(true);
    const { payload, ms } = await socket.slashCommand({
      command: '/backup',
      text: 'now',
      user_id: 'U0ONCALL',
      user_name: 'oncall',
      channel_id: 'C0INCIDENTS',
      team_id: 'T0PGBB',
      response_url: h.slack.responseUrl('socket'),
      trigger_id: '1.2.3',
      api_app_id: 'A0PGBBAPP',
    });
    expect(ms).toBeLessThan(3000);
    const text = String((payload as { text?: string }).text);
    const jobId = /job `([^`]+)`/.exec(text)?.[1];
    expect(jobId).toMatch(/^backup-shop-/);
    await h.slack.waitFor(
      (c) => c.method === 'chat.update' && JSON.stringify(c.body).includes(jobId ?? '') && /succeeded|FAILED/.test(String(c.body.text)),
      60_000,
    );
    const health = await fetch(`${h.metricsUrl}/healthz`);
    expect(health.status).toBe(200);
  });
});
