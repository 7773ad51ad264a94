import type { App } from '@slack/bolt';
import { backupCommand, type BackupCommandDeps, type CommandInput, type Reply } from './backup-command.ts';

export { backupCommand, type CommandInput, type Reply } from './backup-command.ts';
export { parseBackupText, BACKUP_USAGE } from './backup-text.ts';

export type CommandHandler = (input: CommandInput) => Promise<Reply>;

/** `/restore-test` is declared in the Slack manifest already; until restore tests land it says so plainly. */
export function restoreTestCommand(): CommandHandler {
  return async () => ({
    text: 'Restore tests are not available in this version yet: nothing was started. Meanwhile, `npx pg-backup-bot list` shows backups and each backup is checked readable with `pg_restore --list` when it is taken.',
  });
}

/** The bot's whole Slack surface, one line per command. */
export function commandTable(deps: BackupCommandDeps): Record<string, CommandHandler> {
  return {
    '/backup': backupCommand(deps),
    '/restore-test': restoreTestCommand(),
  };
}

export function registerCommands(app: App, handlers: Record<string, CommandHandler>): void {
  for (const [name, handle] of Object.entries(handlers)) {
    app.command(name, async ({ command, ack }) => {
      // Slack allows 3 s to ack; handlers only parse, enqueue or read, so the ack carries the answer itself.
      const reply = await handle({ text: command.text, userId: command.user_id, userName: command.user_name, channelId: command.channel_id });
      await ack({ response_type: 'ephemeral', text: reply.text });
    });
  }
}
