import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type ServerOptions } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { promisify } from 'node:util';
import { closeServer, listenLocal, readBody, watchedList } from './http-util.ts';
import { validatePdEvent, type PdEvent } from './pagerduty-validate.ts';

export type { PdEvent } from './pagerduty-validate.ts';

/**
 * A local PagerDuty Events API v2 for tests. It speaks HTTPS because @pagerduty/pdjs builds
 * `https://${server}/v2/enqueue` and cannot be pointed at plain HTTP; clients trust it through `ca`.
 */

export interface PdRejected {
  status: number;
  /** The parsed JSON body, or the raw text when it was not JSON (null when over the size limit). */
  body: unknown;
  error: string;
}

export interface PdRequest {
  method: string;
  path: string;
  status: number;
  /** The TLS version the connection negotiated, e.g. 'TLSv1.3': proof the client really spoke HTTPS to us. */
  tlsProtocol: string | null;
  at: number;
}

export interface PdAlert {
  dedup_key: string;
  status: 'triggered' | 'acknowledged' | 'resolved';
  summary: string;
  /** Accepted events for this key, in order. */
  actions: Array<PdEvent['event_action']>;
}

export interface PagerDutyServer {
  eventsUrl: string;
  /** host:port, the form pdjs's `server` option takes. */
  server: string;
  /** PEM of the self-signed certificate: `new https.Agent({ ca })`, or NODE_EXTRA_CA_CERTS for a child process. */
  ca: string;
  /** Accepted events as sent, with `dedup_key` filled in when the server generated one. */
  events: PdEvent[];
  rejected: PdRejected[];
  requests: PdRequest[];
  /** Alert state per dedup key, as PagerDuty's incident view would show it. */
  alerts: Map<string, PdAlert>;
  /** The next `n` requests answer `status` (500, 503, 429…) without ingesting, to test retries. */
  failNext(n: number, status?: number): void;
  waitFor(predicate: (event: PdEvent) => boolean, timeoutMs?: number): Promise<PdEvent>;
  close(): Promise<void>;
}

const MAX_BODY = 512 * 1024;
const run = promisify(execFile);
let certificate: Promise<{ key: string; cert: string }> | undefined;

/** One self-signed certificate per process: RSA key generation is the slow part of starting a server. */
function selfSignedCertificate(): Promise<{ key: string; cert: string }> {
  certificate ??= (async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pgbb-pd-tls-'));
    try {
      const key = join(dir, 'key.pem');
      const cert = join(dir, 'cert.pem');
      await run('openssl', [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-subj',
        '/CN=127.0.0.1',
        '-addext',
        'subjectAltName=IP:127.0.0.1,DNS:localhost',
        '-days',
        '1',
        '-keyout',
        key,
        '-out',
        cert,
      ]);
      return { key: await readFile(key, 'utf8'), cert: await readFile(cert, 'utf8') };
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  })();
  return certificate;
}

function send(res: ServerResponse, status: number, body: unknown): void {
  // JSON on every status, as PagerDuty does: pdjs calls response.json() whatever the status.
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

export async function startPagerDutyServer(options: { routingKey: string }): Promise<PagerDutyServer> {
  const { key, cert } = await selfSignedCertificate();
  const events = watchedList<PdEvent>('PagerDuty event');
  const rejected: PdRejected[] = [];
  const requests: PdRequest[] = [];
  const alerts = new Map<string, PdAlert>();
  let failures = { n: 0, status: 500 };

  function accept(event: PdEvent): string {
    const dedupKey = event.dedup_key ?? randomUUID().replace(/-/g, '');
    const accepted = { ...event, dedup_key: dedupKey };
    const alert = alerts.get(dedupKey);
    // Acknowledge and resolve act only on an open alert; after a resolve the same key opens a new one.
    if (event.event_action === 'trigger') {
      if (!alert || alert.status === 'resolved') {
        alerts.set(dedupKey, { dedup_key: dedupKey, status: 'triggered', summary: event.payload?.summary ?? '', actions: ['trigger'] });
      } else alert.actions.push('trigger');
    } else if (alert && alert.status !== 'resolved') {
      alert.status = event.event_action === 'resolve' ? 'resolved' : 'acknowledged';
      alert.actions.push(event.event_action);
    }
    events.push(accepted);
    return dedupKey;
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<number> {
    const path = new URL(req.url ?? '/', 'https://localhost').pathname;
    const raw = await readBody(req, MAX_BODY);
    const text = raw?.toString('utf8') ?? null;
    let body: unknown = text;
    let isJson = false;
    try {
      if (text !== null) [body, isJson] = [JSON.parse(text), true];
    } catch {
      // keep the raw text for the rejected log
    }
    const reject = (status: number, error: string, reply: unknown) => {
      rejected.push({ status, body, error });
      send(res, status, reply);
      return status;
    };
    if (req.method !== 'POST' || path !== '/v2/enqueue') return reject(404, 'not found', { status: 'not found', message: 'Not Found' });
    if (failures.n > 0) {
      failures.n -= 1;
      const { status } = failures;
      const reply =
        status === 429
          ? { status: 'throttle event', message: 'Requests for this service are arriving too quickly. Please retry later.' }
          : { status: 'error', message: 'Internal Server Error' };
      return reject(status, `injected ${status}`, reply);
    }
    if (text === null) return reject(413, 'body over 512 KB', { status: 'invalid event', message: 'Request entity too large' });
    if (!isJson) {
      return reject(400, 'body is not JSON', { status: 'invalid event', message: 'Event object is invalid', errors: ['Could not parse JSON'] });
    }
    const errors = validatePdEvent(body, options.routingKey);
    if (errors.length) return reject(400, errors.join('; '), { status: 'invalid event', message: 'Event object is invalid', errors });
    const dedupKey = accept(body as PdEvent);
    send(res, 202, { status: 'success', message: 'Event processed', dedup_key: dedupKey });
    return 202;
  }

  const httpsOptions: ServerOptions = { key, cert };
  const server = createServer(httpsOptions, (req, res) => {
    const at = Date.now();
    const tlsProtocol = (req.socket as TLSSocket).getProtocol?.() ?? null;
    handle(req, res)
      .catch((err: unknown) => {
        send(res, 500, { status: 'error', message: String(err) });
        return 500;
      })
      .then((status) => requests.push({ method: req.method ?? '', path: req.url ?? '', status, tlsProtocol, at }));
  });
  const port = await listenLocal(server);

  return {
    eventsUrl: `https://127.0.0.1:${port}/v2/enqueue`,
    server: `127.0.0.1:${port}`,
    ca: cert,
    events: events.items,
    rejected,
    requests,
    alerts,
    failNext(n, status = 500) {
      failures = { n, status };
    },
    waitFor: (predicate, timeoutMs) => events.waitFor(predicate, timeoutMs),
    close: () => closeServer(server),
  };
}
