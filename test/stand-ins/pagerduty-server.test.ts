import { Agent, request } from 'node:https';
// pdjs is CommonJS; under Node's ESM loader (vitest, tsx) both the named and the default import work.
import { event } from '@pagerduty/pdjs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startPagerDutyServer, type PagerDutyServer } from '../support/pagerduty-server.ts';

const KEY = 'R0UT1NGKEY0123456789abcdefABCDEF';
type EventData = Parameters<typeof event>[0]['data'];

const trigger = (extra: Record<string, unknown> = {}): EventData => ({
  routing_key: KEY,
  event_action: 'trigger',
  dedup_key: 'pg-backup-bot/prod/backup_failed',
  payload: { summary: 'Backup of prod failed', source: 'pg-backup-bot', severity: 'error', timestamp: new Date().toISOString() },
  ...extra,
});

/** Raw HTTPS POST, for bodies pdjs would never send (too large, not JSON). */
function post(pd: PagerDutyServer, path: string, body: string): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const req = request(`https://${pd.server}${path}`, { method: 'POST', ca: pd.ca, headers: { 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('local PagerDuty Events API v2', () => {
  let pd: PagerDutyServer;
  let agent: Agent;
  // pdjs spreads unknown options into node-fetch 2, which takes `agent`; `requestTimeout: 0` avoids its 30 s
  // timer that aborts nothing, and a short `retryTimeout` replaces its 20 s wait between 429 retries.
  const send = (data: EventData) => event({ data, server: pd.server, requestTimeout: 0, retryTimeout: 10, ...({ agent } as object) });

  beforeEach(async () => {
    pd = await startPagerDutyServer({ routingKey: KEY });
    agent = new Agent({ ca: pd.ca });
  });
  afterEach(async () => {
    agent.destroy();
    await pd.close();
  });

  it('accepts a good trigger from pdjs over TLS with 202', async () => {
    const res = await send(trigger());
    expect(res.status).toBe(202);
    expect(res.data).toEqual({ status: 'success', message: 'Event processed', dedup_key: 'pg-backup-bot/prod/backup_failed' });
    expect(pd.events).toMatchObject([{ event_action: 'trigger', payload: { summary: 'Backup of prod failed' } }]);
    expect(pd.requests[0]?.tlsProtocol).toMatch(/^TLSv1\.[23]$/);
    expect(pd.alerts.get('pg-backup-bot/prod/backup_failed')?.status).toBe('triggered');
  });

  it('generates a dedup key for a trigger without one', async () => {
    const res = await send(trigger({ dedup_key: undefined }));
    expect(res.data.dedup_key).toMatch(/^[0-9a-f]{32}$/);
    expect(pd.events[0]?.dedup_key).toBe(res.data.dedup_key);
  });

  it('is refused by a client that does not trust its certificate', async () => {
    const untrusted = event({ data: trigger(), server: pd.server, requestTimeout: 0 });
    await expect(untrusted).rejects.toThrow(/self[- ]signed|certificate/i);
    expect(pd.events).toHaveLength(0);
  });

  it.each([
    ['a bad severity', trigger({ payload: { summary: 's', source: 'x', severity: 'fatal' } }), 'severity'],
    ['a missing payload', trigger({ payload: undefined }), "'payload'"],
    ['a long summary', trigger({ payload: { summary: 'x'.repeat(1025), source: 'x', severity: 'info' } }), 'summary'],
    ['a bad timestamp', trigger({ payload: { summary: 's', source: 'x', severity: 'info', timestamp: 'yesterday' } }), 'timestamp'],
    ['an unknown field', trigger({ severity: 'error' }), "Unknown field 'severity'"],
    ['a misspelt payload field', trigger({ payload: { summary: 's', source: 'x', severity: 'info', customDetails: {} } }), 'payload.customDetails'],
    ['a resolve without dedup_key', { routing_key: KEY, event_action: 'resolve' }, 'dedup_key'],
    ['a dedup_key over 255 characters', trigger({ dedup_key: 'k'.repeat(256) }), 'dedup_key'],
    ['another routing key', trigger({ routing_key: 'X'.repeat(32) }), 'Invalid routing key'],
    ['a short routing key', trigger({ routing_key: 'abc' }), 'Invalid routing key'],
  ])('answers 400 to %s', async (_name, data, expected) => {
    const res = await send(data as EventData);
    expect(res.status).toBe(400);
    expect(res.data).toMatchObject({ status: 'invalid event', message: 'Event object is invalid' });
    expect((res.data.errors as string[]).join('\n')).toContain(expected);
    expect(pd.events).toHaveLength(0);
    expect(pd.rejected[0]?.status).toBe(400);
  });

  it('opens, acknowledges and resolves an alert by dedup key', async () => {
    const key = 'pg-backup-bot/prod/restore_test';
    await send(trigger({ dedup_key: key }));
    await send({ routing_key: KEY, event_action: 'acknowledge', dedup_key: key } as EventData);
    expect(pd.alerts.get(key)?.status).toBe('acknowledged');
    await send({ routing_key: KEY, event_action: 'resolve', dedup_key: key } as EventData);
    expect(pd.alerts.get(key)).toMatchObject({ status: 'resolved', actions: ['trigger', 'acknowledge', 'resolve'] });
  });

  it('answers 429 without ingesting; pdjs retries 429 on its own', async () => {
    pd.failNext(2, 429);
    const res = await send(trigger());
    expect(res.status).toBe(202);
    expect(pd.requests.map((r) => r.status)).toEqual([429, 429, 202]);
    expect(pd.events).toHaveLength(1);
  });

  it('answers 500 without ingesting; pdjs resolves with it and does not retry', async () => {
    pd.failNext(1, 500);
    const res = await send(trigger());
    expect(res.status).toBe(500);
    expect(res.ok).toBe(false);
    expect(pd.events).toHaveLength(0);
    expect(pd.rejected).toMatchObject([{ status: 500, error: 'injected 500' }]);
    expect((await send(trigger())).status).toBe(202);
  });

  it('answers 413 past 512 KB, 400 to a body that is not JSON, and 404 off /v2/enqueue', async () => {
    const big = JSON.stringify({ ...trigger(), payload: { summary: 's', source: 'x', severity: 'info', custom_details: { log: 'x'.repeat(520 * 1024) } } });
    expect((await post(pd, '/v2/enqueue', big)).status).toBe(413);
    expect(await post(pd, '/v2/enqueue', 'not json')).toMatchObject({ status: 400, body: { errors: ['Could not parse JSON'] } });
    expect((await post(pd, '/v2/change/enqueue', JSON.stringify(trigger()))).status).toBe(404);
    expect(pd.events).toHaveLength(0);
  });

  it('resolves waitFor when a matching event arrives later', async () => {
    const seen = pd.waitFor((e) => e.event_action === 'resolve', 2000);
    const sent = new Promise((resolve) => setTimeout(resolve, 20)).then(() => send({ routing_key: KEY, event_action: 'resolve', dedup_key: 'k' } as EventData));
    expect((await seen).dedup_key).toBe('k');
    expect((await sent).status).toBe(202);
  });
});
