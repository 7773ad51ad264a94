import { createServer, type Server, Socket } from 'node:net';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { readServerClock, serverStampClock } from '../../src/postgres/server-clock.ts';

/** A TCP relay to the test server that can be cut: the server's ordinary connection lost between two readings. */
async function relay(target: URL): Promise<{ url: string; cut(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = new Socket();
    sockets.add(client).add(upstream);
    upstream.connect(Number(target.port || 5432), target.hostname);
    client.pipe(upstream).pipe(client);
    const drop = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop);
    upstream.on('error', drop);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const url = new URL(target.toString());
  url.hostname = '127.0.0.1';
  url.port = String(port);
  return {
    url: url.toString(),
    async cut() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

describe('the server’s clock for stamps', () => {
  let cleanup: (() => Promise<void>) | undefined;
  afterEach(async () => {
    await cleanup?.();
    cleanup = undefined;
  });

  it('reads the server’s time', async () => {
    const before = Date.now();
    const at = await readServerClock(inject('pgUrl'));
    // This machine's server shares the worker's clock.
    expect(at.getTime()).toBeGreaterThanOrEqual(before - 1000);
    expect(at.getTime()).toBeLessThanOrEqual(Date.now() + 1000);
  });

  it('once the server is gone, the worker’s clock plus the difference first measured: never earlier than the server’s', async () => {
    const r = await relay(new URL(inject('pgUrl')));
    cleanup = r.cut;
    // The worker's clock an hour behind the server's.
    const behind = () => new Date(Date.now() - 3_600_000);
    const said: string[] = [];
    const clock = serverStampClock(r.url, behind, (why) => said.push(why), 2000);
    const start = await clock();
    expect(Math.abs(start.getTime() - Date.now())).toBeLessThan(1000);
    expect(said).toEqual([]);
    await r.cut();
    cleanup = undefined;
    const finish = await clock();
    expect(said).toHaveLength(1);
    // Corrected by the measured difference (at its upper bound): the server's time, not an hour before it.
    expect(finish.getTime()).toBeGreaterThanOrEqual(start.getTime());
    expect(finish.getTime()).toBeGreaterThanOrEqual(Date.now() - 50);
    expect(finish.getTime()).toBeLessThanOrEqual(Date.now() + 1000);
  });

  it('without a first reading, the worker’s clock for every stamp: a start and a finish never mix two clocks', async () => {
    const r = await relay(new URL(inject('pgUrl')));
    await r.cut();
    const behind = () => new Date(Date.now() - 3_600_000);
    const said: string[] = [];
    const clock = serverStampClock(r.url, behind, (why) => said.push(why), 2000);
    const start = await clock();
    const finish = await clock();
    expect(said).toHaveLength(1);
    for (const t of [start, finish]) expect(t.getTime()).toBeLessThan(Date.now() - 3_500_000);
    expect(finish.getTime()).toBeGreaterThanOrEqual(start.getTime());
  });
});
