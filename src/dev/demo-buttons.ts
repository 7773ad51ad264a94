import type { Reply } from '../commands/backup-command.ts';
import type { ActionHandler } from '../commands/index.ts';
import { plainText } from '../notifications/console-notifier.ts';
import type { Block } from '../notifications/types.ts';

interface Button {
  action_id?: string;
  value?: string;
  text?: { text?: string };
  confirm?: { text?: { text?: string } };
}

/**
 * The buttons of a reply (a replacement's confirmation) in a terminal: Slack would show them to click; the demo
 * prints them and takes their label typed at the prompt as the click, with the same handler, role check and
 * single-use request as the real bot's (commands/index.ts actionTable). Offered until the next command.
 */
export class DemoButtons {
  private offered = new Map<string, { actionId: string; value: string }>();

  constructor(
    private readonly actions: Record<string, ActionHandler>,
    private readonly user: { userId: string; userName: string },
  ) {}

  /** Remembers the reply's clickable buttons; the lines that show them (none when it has none). */
  offer(reply: Reply): string[] {
    this.offered.clear();
    const buttons = (reply.blocks ?? []).flatMap((b: Block) => (b.type === 'actions' ? ((b.elements as Button[] | undefined) ?? []) : []));
    const lines: string[] = [];
    for (const b of buttons) {
      const label = b.text?.text?.trim();
      if (!label || !b.action_id || b.value === undefined || !this.actions[b.action_id]) continue;
      this.offered.set(label.toLowerCase(), { actionId: b.action_id, value: b.value });
      const asks = b.confirm?.text?.text ? ` (Slack asks first: ${plainText(b.confirm.text.text)})` : '';
      lines.push(`[ ${label} ]  type "${label}" to click it${asks}`);
    }
    return lines;
  }

  /** The click's reply when the line is an offered button's label (each button once); null when it is not one. */
  async click(line: string): Promise<Reply | null> {
    const button = this.offered.get(line.trim().toLowerCase());
    if (!button) return null;
    this.offered.clear();
    const handle = this.actions[button.actionId];
    return handle ? handle({ ...this.user, actionId: button.actionId, value: button.value }) : null;
  }
}
