import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { App, Receiver, ReceiverEvent } from '@slack/bolt';
import { AuthorizationError, verifySlackRequest } from '@slack/bolt';
import type { Logger } from './logger.ts';

/**
 * Slack's HTTP requests, handed to Bolt: Bolt's own extension point (a Receiver) in place of its HTTPReceiver, which
 * costs a burst of acks about a third more CPU per request on this machine (docs/benchmarks.md, leg K). Its checks
 * are Bolt's: the signature by Bolt's verifySlackRequest (v0 HMAC, timestamps older than 5 minutes refused: 401),
 * bodies over 4 MB refused (413), `ssl_check` and `url_verification` answered, an event no handler acks within 3 s
 * answered 404, a handler's error 500 (401 for an authorization error). Only POST /slack/events is served: no
 * OAuth install pages, no custom routes (this bot has neither).
 */
export const EVENTS_PATH = '/slack/events';
const BODY_LIMIT = 4 * 1024 * 1024;
const UNACKED_MS = 3_001;

type Body = Record<string, unknown>;

export class SlackEventsReceiver implements Receiver {
  #app: App | null = null;
  #server: Server | null = null;
  readonly #signingSecret: string;
  readonly #log: Logger;

  constructor(options: { signingSecret: string; log: Logger }) {
    this.#signingSecret = options.signingSecret;
    this.#log = options.log;
  }

  init(app: App): void {
    this.#app = app;
  }

  start(port: number): Promise<Server> {
    const server = createServer((req, res) => this.#request(req, res));
    this.#server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, () => {
        server.off('error', reject);
        resolve(server);
      });
    });
  }

  stop(): Promise<void> {
    const server = this.#server;
    this.#server = null;
    if (!server) return Promise.resolve();
    return new Promise((resolve, reject) => {
      server.close((err) => (err ? reject(err) : resolve()));
      server.closeIdleConnections();
    });
  }

  #request(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '').split('?', 1)[0];
    if (req.method !== 'POST' || path !== EVENTS_PATH) {
      this.#log.info({ method: req.method, path }, 'unhandled HTTP request to the Slack port');
      finish(res, 404);
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    // Refused as soon as it is known to be too big (its declared length, or the bytes so far), and the connection
    // closed after the answer: the rest of a body of gigabytes is never read.
    const tooLarge = () => {
      this.#log.warn(`Request body exceeded the maximum allowed size (limit: ${BODY_LIMIT} bytes)`);
      res.setHeader('connection', 'close');
      finish(res, 413);
      req.removeAllListeners('data');
      res.once('finish', () => req.socket.destroy());
    };
    if (Number(req.headers['content-length'] ?? 0) > BODY_LIMIT) {
      tooLarge();
      return;
    }
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > BODY_LIMIT) tooLarge();
      else chunks.push(chunk);
    });
    req.on('error', (err) => this.#log.warn({ err }, 'Slack request stream failed'));
    req.on('end', () => {
      if (size <= BODY_LIMIT) void this.#event(req, res, Buffer.concat(chunks).toString('utf8'));
    });
  }

  async #event(req: IncomingMessage, res: ServerResponse, raw: string): Promise<void> {
    // Slack sends exactly this type; a proxy may add `; charset=utf-8`.
    const form = (req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded');
    let fields: URLSearchParams | null = null;
    if (form) {
      fields = new URLSearchParams(raw);
      // Slack's SSL check carries no signature (as Bolt's receiver, answered before verifying).
      if (fields.get('ssl_check') === '1') {
        finish(res, 200);
        return;
      }
    }
    try {
      verifySlackRequest({
        signingSecret: this.#signingSecret,
        body: raw,
        headers: {
          'x-slack-signature': String(req.headers['x-slack-signature'] ?? ''),
          'x-slack-request-timestamp': Number(req.headers['x-slack-request-timestamp']),
        },
      });
    } catch (err) {
      this.#log.warn(`Failed to parse and verify the request data: ${(err as Error).message}`);
      finish(res, 401);
      return;
    }
    let body: Body;
    try {
      const payload = fields?.get('payload');
      body = fields ? (typeof payload === 'string' ? JSON.parse(payload) : Object.fromEntries(fields)) : JSON.parse(raw);
    } catch (err) {
      this.#log.warn(`Malformed request body: ${(err as Error).message}`);
      finish(res, 400);
      return;
    }
    if (body.type === 'url_verification') {
      finish(res, 200, { challenge: body.challenge });
      return;
    }
    let acked = false;
    const unacked = setTimeout(() => {
      if (acked) return;
      acked = true;
      this.#log.error('An incoming event was not acknowledged within 3 seconds. Ensure that the ack() argument is called in your listeners.');
      finish(res, 404);
    }, UNACKED_MS);
    const event: ReceiverEvent = {
      body,
      ack: async (response?: unknown) => {
        if (acked) throw new Error('The incoming event was already acknowledged.');
        acked = true;
        clearTimeout(unacked);
        finish(res, 200, response);
      },
      customProperties: {},
    };
    const retryNum = header(req, 'x-slack-retry-num');
    const retryReason = header(req, 'x-slack-retry-reason');
    if (retryNum !== undefined) event.retryNum = Number.parseInt(retryNum, 10);
    if (retryReason !== undefined) event.retryReason = retryReason;
    try {
      await this.#app?.processEvent(event);
    } catch (err) {
      if (res.headersSent) {
        this.#log.error({ err }, 'An unhandled error occurred after ack() called in a listener');
        return;
      }
      acked = true;
      clearTimeout(unacked);
      if (err instanceof AuthorizationError) {
        finish(res, 401);
        return;
      }
      this.#log.error({ err }, 'An unhandled error occurred while Bolt processed an event');
      finish(res, 500);
    }
  }
}

/** The answer as Bolt's receiver writes it: nothing, a text, or JSON. */
function finish(res: ServerResponse, status: number, body?: unknown): void {
  if (res.headersSent) return;
  if (!body) {
    res.writeHead(status);
    res.end();
  } else if (typeof body === 'string') {
    res.writeHead(status);
    res.end(body);
  } else {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  }
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}
