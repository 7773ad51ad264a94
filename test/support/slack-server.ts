import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { attachSocketMode, type SocketModeSide } from './socket-mode.ts';
import { closeServer, listenLocal, readBody, watchedList } from './http-util.ts';
import { validateBlocks } from './slack-blocks.ts';
import { createSlackMethods, type SlackEphemeral, type SlackHomeView, type SlackMessage } from './slack-methods.ts';

export { BOT, fakeChannelId, TEAM, type SlackEphemeral, type SlackMessage } from './slack-methods.ts';

/**
 * A local Slack Web API for tests: `new WebClient(token, { slackApiUrl: server.url })` or Bolt's
 * `clientOptions.slackApiUrl`. Strict where Slack is: bearer token, channel IDs vs names, Block Kit limits,
 * chat.update only on a message that exists in that channel. Every call is recorded, failed ones too.
 */

export interface SlackCall {
  method: string;
  /** Decoded arguments: form fields as strings, except `blocks`/`attachments`/`metadata` parsed from their JSON. */
  body: Record<string, unknown>;
  at: number;
  contentType: string;
  /** What the server answered, e.g. `{ ok: false, error: 'channel_not_found' }`. */
  response: Record<string, unknown>;
}

export interface SlackResponsePost {
  id: string;
  body: unknown;
  status: number;
  at: number;
}

export interface SlackServerOptions {
  botToken: string;
  /** Channel name (with or without '#') → ID. Given, any other channel is `channel_not_found`; absent, any is accepted. */
  channels?: Record<string, string>;
  /** User ID → name. Given, users.info / chat.postEphemeral know only these users. */
  users?: Record<string, string>;
  /** An app-level token (xapp-…): enables Socket Mode (`apps.connections.open` and a WebSocket endpoint). */
  appToken?: string;
}

export interface SlackServer {
  /** Present when `appToken` was given. */
  socketMode?: SocketModeSide;
  /** Web API base, ending in `/api/`. */
  url: string;
  calls: SlackCall[];
  /** Messages by ts (replies included; `thread_ts` names their root). */
  messages: Map<string, SlackMessage>;
  ephemerals: SlackEphemeral[];
  /** Every App Home view published (`views.publish`), oldest first. */
  homes: SlackHomeView[];
  responses: SlackResponsePost[];
  waitFor(predicate: (call: SlackCall) => boolean, timeoutMs?: number): Promise<SlackCall>;
  waitForResponse(predicate: (post: SlackResponsePost) => boolean, timeoutMs?: number): Promise<SlackResponsePost>;
  /** A response_url on this server; like Slack's it takes 5 posts, then answers 404 `used_url`. */
  responseUrl(id: string): string;
  /** Makes a response_url answer 404 `expired_url` (Slack's after 30 minutes), to test Bolt's RespondError path. */
  expireResponseUrl(id: string): void;
  /** The next `n` Web API calls (of `method` alone, when given) get HTTP 429 with Retry-After, as Slack's rate limiter answers. */
  rateLimitNext(n: number, retryAfterSeconds?: number, method?: string): void;
  /** From now on calls of `method` are taken and never answered, as a Slack that hangs; null answers again (held ones are cut). */
  hang(method: string | null): void;
  close(): Promise<void>;
}

// In form bodies these arrive as JSON strings: web-api 8 JSON.stringifies every non-scalar argument.
const JSON_FIELDS = ['blocks', 'attachments', 'metadata'];

function decodeArgs(raw: string, contentType: string): Record<string, unknown> | 'invalid_json' | 'invalid_form_data' {
  if (contentType.startsWith('application/json')) {
    try {
      const parsed: unknown = JSON.parse(raw || '{}');
      return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : 'invalid_json';
    } catch {
      return 'invalid_json';
    }
  }
  if (contentType !== '' && !contentType.startsWith('application/x-www-form-urlencoded')) return 'invalid_form_data';
  const args: Record<string, unknown> = Object.fromEntries(new URLSearchParams(raw));
  for (const key of JSON_FIELDS) {
    const value = args[key];
    if (typeof value !== 'string') continue;
    try {
      args[key] = JSON.parse(value);
    } catch {
      // Slack keeps going and reports the field itself as malformed; keep the string for that check.
    }
  }
  return args;
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers });
  res.end(JSON.stringify(body));
}

export async function startSlackServer(options: SlackServerOptions): Promise<SlackServer> {
  const calls = watchedList<SlackCall>('Slack call');
  const responses = watchedList<SlackResponsePost>('response_url post');
  const responseUses = new Map<string, number>();
  const expired = new Set<string>();
  let rateLimited: { n: number; retryAfter: number; method?: string | undefined } = { n: 0, retryAfter: 1 };
  let hung: string | null = null;
  const held = new Set<ServerResponse>();
  const api = createSlackMethods(options);

  async function handleApi(req: IncomingMessage, res: ServerResponse, method: string): Promise<void> {
    const contentType = (req.headers['content-type'] ?? '').toLowerCase();
    const raw = (await readBody(req))?.toString('utf8') ?? '';
    const decoded = decodeArgs(raw, contentType);
    const body = typeof decoded === 'string' ? { raw } : decoded;
    // Slack takes the token from the Authorization header, or as a form field (never from a JSON body).
    const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    const formToken = typeof decoded === 'string' || contentType.startsWith('application/json') ? undefined : decoded.token;
    const token = bearer ?? (typeof formToken === 'string' ? formToken : undefined);
    delete body.token; // recorded calls never hold a token
    const record = (status: number, response: Record<string, unknown>, headers: Record<string, string> = {}) => {
      calls.push({ method, body, at: Date.now(), contentType, response });
      send(res, status, response, headers);
    };
    if (hung === method) {
      calls.push({ method, body, at: Date.now(), contentType, response: { hung: true } });
      held.add(res);
      res.on('close', () => held.delete(res));
      return;
    }
    if (rateLimited.n > 0 && (rateLimited.method === undefined || rateLimited.method === method)) {
      rateLimited.n -= 1;
      return record(429, { ok: false, error: 'ratelimited' }, { 'retry-after': String(rateLimited.retryAfter) });
    }
    if (!token) return record(200, { ok: false, error: 'not_authed' });
    // apps.connections.open takes only the app-level token; every other method only the bot token.
    if (method === 'apps.connections.open') {
      if (!socket || token !== options.appToken) return record(200, { ok: false, error: 'invalid_auth' });
      return record(200, socket.openConnection());
    }
    if (token !== options.botToken) return record(200, { ok: false, error: 'invalid_auth' });
    if (typeof decoded === 'string') return record(200, { ok: false, error: decoded });
    const handler = api.methods[method];
    if (!handler) return record(200, { ok: false, error: 'unknown_method', req_method: method });
    record(200, handler(decoded));
  }

  async function handleResponseUrl(req: IncomingMessage, res: ServerResponse, id: string): Promise<void> {
    const raw = (await readBody(req))?.toString('utf8') ?? '';
    let body: unknown = raw;
    const answer = (status: number, reply: unknown) => {
      responses.push({ id, body, status, at: Date.now() });
      send(res, status, reply);
    };
    if (expired.has(id)) return answer(404, { ok: false, error: 'expired_url' });
    const uses = (responseUses.get(id) ?? 0) + 1;
    responseUses.set(id, uses);
    if (uses > 5) return answer(404, { ok: false, error: 'used_url' });
    try {
      body = JSON.parse(raw);
    } catch {
      return answer(400, { ok: false, error: 'invalid_payload' });
    }
    const msg = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
    const hasText = typeof msg.text === 'string' && msg.text.length > 0;
    if (!hasText && msg.blocks === undefined && msg.delete_original !== true) return answer(400, { ok: false, error: 'no_text' });
    if (msg.blocks !== undefined) {
      const invalid = validateBlocks(msg.blocks);
      if (invalid) return answer(400, { ok: false, error: invalid.error, response_metadata: { messages: invalid.messages } });
    }
    answer(200, { ok: true });
  }

  let socket: ReturnType<typeof attachSocketMode> | null = null;
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    const apiMethod = /^\/api\/([\w.]+)$/.exec(path)?.[1];
    const responseId = /^\/response\/([^/]+)$/.exec(path)?.[1];
    const work =
      req.method !== 'POST'
        ? Promise.resolve(send(res, 405, { ok: false, error: 'method_not_allowed' }))
        : apiMethod
          ? handleApi(req, res, apiMethod)
          : responseId
            ? handleResponseUrl(req, res, decodeURIComponent(responseId))
            : Promise.resolve(send(res, 404, { ok: false, error: 'not_found' }));
    work.catch((err: unknown) => {
      if (!res.headersSent) send(res, 500, { ok: false, error: 'internal_error', detail: String(err) });
    });
  });
  const port = await listenLocal(server);
  const origin = `http://127.0.0.1:${port}`;
  socket = options.appToken ? attachSocketMode(server, origin) : null;

  return {
    url: `${origin}/api/`,
    ...(socket ? { socketMode: socket.side } : {}),
    calls: calls.items,
    messages: api.messages,
    ephemerals: api.ephemerals,
    homes: api.homes,
    responses: responses.items,
    waitFor: (predicate, timeoutMs) => calls.waitFor(predicate, timeoutMs),
    waitForResponse: (predicate, timeoutMs) => responses.waitFor(predicate, timeoutMs),
    responseUrl: (id) => `${origin}/response/${encodeURIComponent(id)}`,
    expireResponseUrl: (id) => void expired.add(id),
    rateLimitNext(n, retryAfterSeconds = 1, method) {
      rateLimited = { n, retryAfter: retryAfterSeconds, method };
    },
    hang(method) {
      hung = method;
      if (method === null) for (const res of held) res.destroy();
    },
    close: async () => {
      for (const res of held) res.destroy();
      await socket?.side.close();
      await closeServer(server);
    },
  };
}
