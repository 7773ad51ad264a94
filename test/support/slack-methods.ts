import { createHash } from 'node:crypto';
import { validateBlocks } from './slack-blocks.ts';

/** The Web API methods the bot uses, with Slack's argument rules and error codes; state lives in memory. */

export interface SlackMessageVersion {
  text: string | undefined;
  blocks: unknown[] | undefined;
  at: number;
}

export interface SlackMessage {
  channel: string;
  ts: string;
  text: string | undefined;
  blocks: unknown[] | undefined;
  thread_ts?: string;
  /** How many chat.update calls changed it. */
  updates: number;
  /** Earlier versions, oldest first (the current one is the message itself). */
  history: SlackMessageVersion[];
}

export interface SlackEphemeral {
  channel: string;
  user: string;
  text: string | undefined;
  blocks: unknown[] | undefined;
  thread_ts?: string;
  message_ts: string;
  at: number;
}

type Args = Record<string, unknown>;
type Reply = Record<string, unknown>;

/** An App Home view as `views.publish` stored it for one user. */
export interface SlackHomeView {
  user: string;
  blocks: unknown[];
  at: number;
}

export interface Api {
  methods: Record<string, (args: Args) => Reply>;
  messages: Map<string, SlackMessage>;
  ephemerals: SlackEphemeral[];
  /** Every `views.publish`, oldest first. */
  homes: SlackHomeView[];
}

export const TEAM = { id: 'T0TESTTEAM', domain: 'pgbb-test', name: 'pgbb test' } as const;
export const BOT = { userId: 'U0PGBBBOT', botId: 'B0PGBBBOT', name: 'pg-backup-bot' } as const;

/** Slack-looking channel ID for a name, stable across runs so logs and snapshots stay comparable. */
export function fakeChannelId(name: string): string {
  return `C${createHash('sha1').update(name).digest('hex').slice(0, 10).toUpperCase()}`;
}

const fail = (error: string, extra: Reply = {}): Reply => ({ ok: false, error, ...extra });
const str = (v: unknown): string | undefined => (typeof v === 'string' && v.length > 0 ? v : undefined);
// Channel names are lowercase in Slack; an all-caps C/G/D token is an ID.
const isChannelId = (s: string) => /^[CGD][A-Z0-9]{2,}$/.test(s);

export function createSlackMethods(options: { channels?: Record<string, string>; users?: Record<string, string> }): Api {
  const strictChannels = options.channels !== undefined;
  const idByName = new Map<string, string>();
  const nameById = new Map<string, string>();
  for (const [name, id] of Object.entries(options.channels ?? {})) {
    idByName.set(name.replace(/^#/, ''), id);
    nameById.set(id, name.replace(/^#/, ''));
  }
  const messages = new Map<string, SlackMessage>();
  const ephemerals: SlackEphemeral[] = [];
  const homes: SlackHomeView[] = [];
  let seq = 0;
  // Real ts values are "<unix seconds>.<6 digits>", unique per channel; a counter keeps them unique and ordered.
  const newTs = () => `${Math.floor(Date.now() / 1000)}.${String(++seq * 100).padStart(6, '0')}`;

  /** chat.postMessage and postEphemeral take a name or an ID; chat.update and conversations.info only an ID. */
  function resolveChannel(value: unknown, allowName: boolean): string | undefined {
    const channel = str(value);
    if (!channel) return undefined;
    if (isChannelId(channel)) {
      if (strictChannels && !nameById.has(channel)) return undefined;
      if (!nameById.has(channel)) nameById.set(channel, channel.toLowerCase());
      return channel;
    }
    if (allowName && /^U[A-Z0-9]{2,}$/.test(channel)) return `D${channel.slice(1)}`; // posting to a user opens a DM
    if (!allowName) return undefined;
    const name = channel.replace(/^#/, '');
    const known = idByName.get(name);
    if (known || strictChannels) return known;
    const id = fakeChannelId(name);
    idByName.set(name, id);
    nameById.set(id, name);
    return id;
  }

  /** The shared text/blocks rules; returns an error reply or the parsed content. */
  function content(args: Args): { error: Reply } | { text: string | undefined; blocks: unknown[] | undefined } {
    const text = typeof args.text === 'string' ? args.text : undefined;
    if (text !== undefined && text.length > 40_000) return { error: fail('msg_too_long') };
    let blocks: unknown[] | undefined;
    if (args.blocks !== undefined && args.blocks !== '') {
      const invalid = validateBlocks(args.blocks);
      if (invalid) return { error: fail(invalid.error, { response_metadata: { messages: invalid.messages } }) };
      blocks = args.blocks as unknown[];
    }
    const hasAttachments = Array.isArray(args.attachments) && args.attachments.length > 0;
    if (!text && !blocks?.length && !hasAttachments) return { error: fail('no_text') };
    return { text, blocks };
  }

  const messageJson = (m: SlackMessage): Reply => ({
    type: 'message',
    subtype: 'bot_message',
    text: m.text ?? '',
    user: BOT.userId,
    bot_id: BOT.botId,
    team: TEAM.id,
    ts: m.ts,
    ...(m.blocks ? { blocks: m.blocks } : {}),
    ...(m.thread_ts ? { thread_ts: m.thread_ts } : {}),
  });

  const methods: Api['methods'] = {
    'auth.test': () => ({
      ok: true,
      url: `https://${TEAM.domain}.slack.com/`,
      team: TEAM.name,
      user: BOT.name,
      team_id: TEAM.id,
      user_id: BOT.userId,
      bot_id: BOT.botId,
      is_enterprise_install: false,
    }),

    'chat.postMessage': (args) => {
      const channel = resolveChannel(args.channel, true);
      if (!channel) return fail('channel_not_found');
      const c = content(args);
      if ('error' in c) return c.error;
      let threadTs: string | undefined;
      if (args.thread_ts !== undefined && args.thread_ts !== '') {
        // Stricter than Slack, which may post a stray reply at top level: a reply to nothing is always our bug.
        const parent = messages.get(String(args.thread_ts));
        if (!parent || parent.channel !== channel) return fail('invalid_thread_ts');
        threadTs = parent.thread_ts ?? parent.ts;
      }
      const ts = newTs();
      const m: SlackMessage = { channel, ts, text: c.text, blocks: c.blocks, updates: 0, history: [], ...(threadTs ? { thread_ts: threadTs } : {}) };
      messages.set(ts, m);
      return { ok: true, channel, ts, message: messageJson(m) };
    },

    'chat.update': (args) => {
      const channel = resolveChannel(args.channel, false);
      if (!channel) return fail('channel_not_found');
      const m = messages.get(String(args.ts ?? ''));
      if (!m || m.channel !== channel) return fail('message_not_found');
      const c = content(args);
      if ('error' in c) return c.error;
      m.history.push({ text: m.text, blocks: m.blocks, at: Date.now() });
      // As in Slack: omitted blocks are kept, an empty array removes them.
      if (c.text !== undefined) m.text = c.text;
      if (args.blocks !== undefined) m.blocks = c.blocks;
      m.updates += 1;
      return { ok: true, channel, ts: m.ts, text: m.text ?? '', message: messageJson(m) };
    },

    'chat.postEphemeral': (args) => {
      const channel = resolveChannel(args.channel, true);
      if (!channel) return fail('channel_not_found');
      const user = str(args.user);
      if (!user || !/^[UW][A-Z0-9]{2,}$/.test(user) || (options.users && !(user in options.users))) return fail('user_not_found');
      const c = content(args);
      if ('error' in c) return c.error;
      const threadTs = str(args.thread_ts);
      const message_ts = newTs();
      ephemerals.push({ channel, user, text: c.text, blocks: c.blocks, message_ts, at: Date.now(), ...(threadTs ? { thread_ts: threadTs } : {}) });
      return { ok: true, message_ts };
    },

    'conversations.info': (args) => {
      const channel = resolveChannel(args.channel, false);
      if (!channel) return fail('channel_not_found');
      const name = nameById.get(channel) ?? channel.toLowerCase();
      return {
        ok: true,
        channel: { id: channel, name, is_channel: true, is_private: false, is_archived: false, is_member: true, created: 1700000000 },
      };
    },

    // Slack's rules for a Home tab: a view of type `home`, up to 100 blocks, each checked as in messages; the
    // view is given as an object by web-api (JSON body) or a JSON string (form body).
    'views.publish': (args) => {
      const user = str(args.user_id);
      if (!user || !/^[UW][A-Z0-9]{2,}$/.test(user) || (options.users && !(user in options.users))) return fail('user_not_found');
      let view: unknown = args.view;
      if (typeof view === 'string') {
        try {
          view = JSON.parse(view);
        } catch {
          return fail('invalid_arguments');
        }
      }
      if (typeof view !== 'object' || view === null) return fail('invalid_arguments');
      const v = view as Record<string, unknown>;
      if (v.type !== 'home') return fail('invalid_arguments', { response_metadata: { messages: ['[ERROR] must be home [json-pointer:/view/type]'] } });
      const invalid = validateBlocks(v.blocks, 100);
      if (invalid) return fail(invalid.error, { response_metadata: { messages: invalid.messages } });
      homes.push({ user, blocks: v.blocks as unknown[], at: Date.now() });
      return { ok: true, view: { id: `V${homes.length}`, type: 'home', blocks: v.blocks } };
    },

    'users.info': (args) => {
      const user = str(args.user);
      if (!user || !/^[UW][A-Z0-9]{2,}$/.test(user) || (options.users && !(user in options.users))) return fail('user_not_found');
      const name = options.users?.[user] ?? `user-${user.toLowerCase()}`;
      return {
        ok: true,
        user: { id: user, team_id: TEAM.id, name, real_name: name, deleted: false, is_bot: false, tz: 'UTC', profile: { display_name: name } },
      };
    },
  };
  return { methods, messages, ephemerals, homes };
}
