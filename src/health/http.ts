import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { BotError } from '../errors.ts';
import type { Logger } from '../logger.ts';

export interface HealthServer {
  port: number;
  stop(): Promise<void>;
}

/**
 * GET /healthz and GET /metrics on a listener of their own (METRICS_HOST:METRICS_PORT, 127.0.0.1 by default), in
 * every mode, workers too. Not on Slack's port: that one must be reachable from the internet, and these say which
 * targets exist, their sizes, their failures and the queues' depths.
 */
export async function startHealthServer(o: {
  host: string;
  port: number;
  healthy: () => Promise<boolean>;
  metrics: () => Promise<{ contentType: string; body: string }>;
  log: Logger;
}): Promise<HealthServer> {
  const reply = (res: ServerResponse, work: Promise<{ status: number; type: string; body: string }>) =>
    work.then(
      (r) => {
        res.writeHead(r.status, { 'content-type': r.type });
        res.end(r.body);
      },
      (err: unknown) => {
        o.log.warn({ err }, 'health or metrics endpoint failed');
        res.writeHead(503, { 'content-type': 'text/plain' });
        res.end('unavailable\n');
      },
    );
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (req.method === 'GET' && path === '/healthz') {
      void reply(
        res,
        o.healthy().then((ok) => ({ status: ok ? 200 : 503, type: 'text/plain', body: ok ? 'ok\n' : 'unhealthy\n' })),
      );
    } else if (req.method === 'GET' && path === '/metrics') {
      void reply(
        res,
        o.metrics().then((m) => ({ status: 200, type: m.contentType, body: m.body })),
      );
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found: GET /healthz or /metrics\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        new BotError(
          'config_invalid',
          `Could not serve /healthz and /metrics on ${o.host}:${o.port} (${err.code ?? err.message}): set METRICS_PORT to a free port, or METRICS_HOST to an address of this machine.`,
          { cause: err },
        ),
      ),
    );
    server.listen(o.port, o.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  o.log.info({ host: o.host, port }, `serving /healthz and /metrics on ${o.host}:${port}`);
  return {
    port,
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
