import { createHmac, randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { BOT, TEAM } from './slack-methods.ts';

/**
 * Requests as Slack sends them to the app (POST /slack/events): form-encoded, signed with the signing
 * secret. Used to drive Bolt's real HTTP receiver, so signature checks, parsing and the 3 s ack all run.
 */

export interface SignedHeaders {
  'x-slack-signature': string;
  'x-slack-request-timestamp': string;
  'content-type': string;
}

/** Slack's v0 signature: HMAC-SHA256 over `v0:{timestamp}:{raw body}`, hex, prefixed `v0=`. */
export function signSlackRequest(signingSecret: string, body: string, timestamp: number = Math.floor(Date.now() / 1000)): SignedHeaders {
  const digest = createHmac('sha256', signingSecret).update(`v0:${timestamp}:${body}`).digest('hex');
  return {
    'x-slack-signature': `v0=${digest}`,
    'x-slack-request-timestamp': String(timestamp),
    'content-type': 'application/x-www-form-urlencoded',
  };
}

export interface SlackReply {
  status: number;
  /** Parsed JSON when the app answered JSON, else the text (empty for a bare `ack()`). */
  body: unknown;
  ms: number;
}

interface Signing {
  /** The app's request URL, e.g. http://127.0.0.1:PORT/slack/events. */
  url: string;
  signingSecret: string;
  /** Sign with a wrong secret: the app must answer 401 and run nothing. */
  forge?: boolean;
  /** Unix seconds; an old one tests the 5-minute replay window. */
  timestamp?: number;
}

async function postSigned(opts: Signing, body: string, contentType?: string): Promise<SlackReply> {
  const secret = opts.forge ? `${opts.signingSecret}-forged` : opts.signingSecret;
  const headers = { ...signSlackRequest(secret, body, opts.timestamp), ...(contentType ? { 'content-type': contentType } : {}) };
  const started = performance.now();
  const res = await fetch(opts.url, { method: 'POST', headers: { ...headers }, body });
  const text = await res.text();
  const ms = performance.now() - started;
  let parsed: unknown = text;
  if ((res.headers.get('content-type') ?? '').includes('json') && text) parsed = JSON.parse(text);
  return { status: res.status, body: parsed, ms };
}

const triggerId = () => `${Date.now()}.${randomBytes(4).readUInt32BE()}.${randomBytes(16).toString('hex')}`;

export interface SlashCommandRequest extends Signing {
  command: string;
  text: string;
  userId: string;
  userName: string;
  channelId: string;
  channelName?: string;
  responseUrl: string;
  teamId?: string;
}

/** Sends a slash command with exactly the fields Slack sends, in Slack's order. */
export function sendSlashCommand(req: SlashCommandRequest): Promise<SlackReply> {
  const form = new URLSearchParams({
    token: 'legacy-verification-token', // Slack still sends it; Bolt ignores it in favour of the signature
    team_id: req.teamId ?? TEAM.id,
    team_domain: TEAM.domain,
    channel_id: req.channelId,
    channel_name: req.channelName ?? 'incidents',
    user_id: req.userId,
    user_name: req.userName,
    command: req.command,
    text: req.text,
    api_app_id: 'A0PGBBAPP',
    is_enterprise_install: 'false',
    response_url: req.responseUrl,
    trigger_id: triggerId(),
  });
  return postSigned(req, form.toString());
}

export interface BlockActionRequest extends Signing {
  userId: string;
  userName?: string;
  channelId: string;
  channelName?: string;
  /** ts of the message holding the button (the bot's own message). */
  messageTs: string;
  responseUrl: string;
  /** The element clicked, e.g. `{ type: 'button', action_id: 'approve', block_id: 'b1', value: 'job-1' }`. */
  action: Record<string, unknown> & { action_id: string };
  /** The message as Slack shows it (text, blocks); defaults to an empty bot message. */
  message?: Record<string, unknown>;
  /** `state.values` for messages with inputs (checkboxes keep their selection here). */
  stateValues?: Record<string, unknown>;
  teamId?: string;
}

/** Sends an interactive `block_actions` payload as Slack does: one `payload` form field holding JSON. */
export function sendBlockAction(req: BlockActionRequest): Promise<SlackReply> {
  const teamId = req.teamId ?? TEAM.id;
  const actionTs = (Date.now() / 1000).toFixed(6);
  const payload = {
    type: 'block_actions',
    user: { id: req.userId, username: req.userName ?? req.userId.toLowerCase(), name: req.userName ?? req.userId.toLowerCase(), team_id: teamId },
    api_app_id: 'A0PGBBAPP',
    token: 'legacy-verification-token',
    container: { type: 'message', message_ts: req.messageTs, channel_id: req.channelId, is_ephemeral: false },
    trigger_id: triggerId(),
    team: { id: teamId, domain: TEAM.domain },
    enterprise: null,
    is_enterprise_install: false,
    channel: { id: req.channelId, name: req.channelName ?? 'incidents' },
    message: { type: 'message', user: BOT.userId, bot_id: BOT.botId, ts: req.messageTs, text: '', ...req.message },
    state: { values: req.stateValues ?? {} },
    response_url: req.responseUrl,
    actions: [{ type: 'button', block_id: 'actions', ...req.action, action_ts: actionTs }],
  };
  return postSigned(req, new URLSearchParams({ payload: JSON.stringify(payload) }).toString());
}

/** An Events API callback as Slack sends it: JSON, signed like the rest. */
export function sendEvent(req: Signing & { event: Record<string, unknown> & { type: string }; teamId?: string }): Promise<SlackReply> {
  const body = JSON.stringify({
    token: 'legacy-verification-token',
    team_id: req.teamId ?? TEAM.id,
    api_app_id: 'A0PGBBAPP',
    event: { event_ts: (Date.now() / 1000).toFixed(6), ...req.event },
    type: 'event_callback',
    event_id: `Ev${randomBytes(5).toString('hex').toUpperCase()}`,
    event_time: Math.floor(Date.now() / 1000),
    authorizations: [{ team_id: req.teamId ?? TEAM.id, user_id: BOT.userId, is_bot: true, is_enterprise_install: false }],
  });
  return postSigned(req, body, 'application/json');
}

/** `app_home_opened` on the Home tab, as Slack sends it when a user opens the app. */
export function openHome(req: Signing & { userId: string }): Promise<SlackReply> {
  return sendEvent({ ...req, event: { type: 'app_home_opened', user: req.userId, channel: `D${req.userId.slice(1)}`, tab: 'home' } });
}

/** A button clicked in the App Home: a `block_actions` payload whose container is the view (no channel, no response_url). */
export function clickInHome(
  req: Signing & { userId: string; userName?: string; action: Record<string, unknown> & { action_id: string } },
): Promise<SlackReply> {
  const payload = {
    type: 'block_actions',
    user: { id: req.userId, username: req.userName ?? req.userId.toLowerCase(), name: req.userName ?? req.userId.toLowerCase(), team_id: TEAM.id },
    api_app_id: 'A0PGBBAPP',
    token: 'legacy-verification-token',
    container: { type: 'view', view_id: 'V0HOME' },
    trigger_id: triggerId(),
    team: { id: TEAM.id, domain: TEAM.domain },
    enterprise: null,
    is_enterprise_install: false,
    view: { id: 'V0HOME', type: 'home', blocks: [], state: { values: {} } },
    actions: [{ type: 'button', block_id: 'home', ...req.action, action_ts: (Date.now() / 1000).toFixed(6) }],
  };
  return postSigned(req, new URLSearchParams({ payload: JSON.stringify(payload) }).toString());
}
