import type { ChannelMessage, MessageRef, Notifier } from './types.ts';

/** The demo's stand-in for Slack: channel messages printed readably in the terminal. */
export class ConsoleNotifier implements Notifier {
  private counter = 0;

  constructor(
    private readonly write: (line: string) => void = (line) => process.stdout.write(`${line}\n`),
    private readonly channel = '#incidents',
  ) {}

  async post(message: ChannelMessage): Promise<MessageRef> {
    const ts = `${Date.now() / 1000}`.padEnd(10, '0') + String(++this.counter).padStart(4, '0');
    this.print(`${this.channel} · new message`, message);
    return { channel: this.channel, ts };
  }

  async update(_ref: MessageRef, message: ChannelMessage): Promise<void> {
    this.print(`${this.channel} · message updated`, message);
  }

  async reply(_ref: MessageRef, message: ChannelMessage): Promise<void> {
    this.print(`${this.channel} · ↳ in thread`, message);
  }

  private print(header: string, message: ChannelMessage): void {
    const body = renderBlocks(message) ?? message.text;
    const lines = body.split('\n').map((l) => `  │ ${l}`);
    this.write(`\n  ┌─ ${header}\n${lines.join('\n')}\n  └─`);
  }
}

const EMOJI: Record<string, string> = {
  hourglass_flowing_sand: '⏳',
  white_check_mark: '✅',
  x: '❌',
  warning: '⚠️',
  robot_face: '🤖',
  no_entry: '⛔',
  rotating_light: '🚨',
  arrow_right: '➡️',
  point_right: '👉',
  wastebasket: '🗑️',
  white_circle: '⚪',
};

/** Block Kit to terminal text: section/context/header text, fields side by side as "a · b". */
export function renderBlocks(message: ChannelMessage): string | undefined {
  if (!message.blocks?.length) return undefined;
  const out: string[] = [];
  for (const block of message.blocks) {
    const text = (block.text as { text?: string } | undefined)?.text;
    if (text) out.push(text);
    const fields = block.fields as Array<{ text: string }> | undefined;
    if (fields?.length) out.push(fields.map((f) => f.text.replace(/\n/g, ' ')).join('  ·  '));
    const elements = block.elements as Array<{ text?: string }> | undefined;
    if (block.type === 'context' && elements) out.push(elements.map((e) => e.text ?? '').join(' '));
    if (block.type === 'actions' && elements) out.push(...elements.flatMap(checkboxLines));
    if (block.type === 'divider') out.push('────────');
  }
  return plainText(out.join('\n'));
}

type Option = { text?: { text?: string }; value?: string };

/** A checklist's boxes, `[x]` ticked and `[ ]` open: without them the demo hid every item nobody had ticked. */
function checkboxLines(element: unknown): string[] {
  const e = element as { type?: string; options?: Option[]; initial_options?: Option[] };
  if (e.type !== 'checkboxes') return [];
  const ticked = new Set((e.initial_options ?? []).map((o) => o.value));
  return (e.options ?? []).map((o) => `${ticked.has(o.value) ? '[x]' : '[ ]'} ${o.text?.text ?? o.value ?? ''}`);
}

/**
 * Slack mrkdwn to terminal text: no asterisks, underscores of italics or backticks; user mentions, links, date
 * tokens (their fallback text) and emoji shown readably; Slack's escapes undone. Code is left as it is: the
 * asterisks of a cron pattern (`15 * * * *`) are not bold marks, nor the underscores of `pgbb_rt_…`.
 */
export function plainText(mrkdwn: string): string {
  return mrkdwn
    .replace(/```/g, '')
    .split(/(`[^`\n]+`)/)
    .map((part, i) =>
      i % 2 === 1
        ? part.slice(1, -1)
        : part
            .replace(/\*([^*\n]+)\*/g, '$1')
            // Italics only as Slack reads them: an underscore after a space or bracket, and one before a space or punctuation.
            .replace(/(^|[\s(])_([^_\n]+)_(?=$|[\s.,;:!?)])/gm, '$1$2')
            .replace(/<!date\^\d+\^[^|>]*\|([^>]*)>/g, '$1')
            .replace(/<@(U[A-Z0-9]+)>/g, '@$1')
            .replace(/<(https?:[^|>]+)\|([^>]+)>/g, '$2 ($1)')
            .replace(/:([a-z_]+):/g, (all, name: string) => EMOJI[name] ?? all)
            .replace(/&lt;/g, '<')
            .replace(/&gt;/g, '>')
            .replace(/&amp;/g, '&'),
    )
    .join('');
}
