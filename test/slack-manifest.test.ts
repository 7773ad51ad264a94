import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { parseBackupText } from '../src/commands/backup-text.ts';
import { parseRestoreTestText, parseRestoreText } from '../src/commands/restore-text.ts';

interface SlashCommand {
  command: string;
  description: string;
  usage_hint: string;
  url: string;
}

/**
 * manifest.yml is what a team creates the Slack app from (docs/slack-install.md): it must pass Slack's manifest
 * schema limits (slackapi/manifest-schema, v1), and each command's usage hint must list every subcommand the bot
 * understands, each of which the bot's own parser accepts as written there.
 */
describe('manifest.yml', async () => {
  const manifest = parse(await readFile('manifest.yml', 'utf8')) as {
    display_information: { name: string; description: string };
    features: { slash_commands: SlashCommand[]; app_home: { home_tab_enabled: boolean } };
    settings: { event_subscriptions: { bot_events: string[] } };
    oauth_config: { scopes: { bot: string[] } };
  };
  const commands = new Map(manifest.features.slash_commands.map((c) => [c.command, c]));

  it('keeps within the schema’s limits', () => {
    expect(manifest.display_information.name.length).toBeLessThanOrEqual(35);
    expect(manifest.display_information.description.length).toBeLessThanOrEqual(140);
    for (const c of commands.values()) {
      expect(c.command).toMatch(/^\/.{1,31}$/);
      expect(c.description.length).toBeGreaterThan(0);
      expect(c.description.length).toBeLessThanOrEqual(2000);
      expect(c.usage_hint.length).toBeGreaterThan(0);
      expect(c.usage_hint.length).toBeLessThanOrEqual(1000);
      expect(c.url).toMatch(/^https:\/\//);
    }
    expect(manifest.oauth_config.scopes.bot).toEqual(expect.arrayContaining(['commands', 'chat:write', 'chat:write.public', 'usergroups:read']));
  });

  // Each example is how the hint reads, filled in; each must parse to the subcommand it names, not to help.
  // [command, text, parser, the word the hint names, the verb the parser gives]
  const examples: Array<[string, string, (text: string) => { verb: string }, string, string?]> = [
    ['/backup', 'now shop', parseBackupText, 'now'],
    ['/backup', 'now --physical shop', parseBackupText, 'now --physical', 'now'],
    ['/backup', 'pre-migration JIRA-1 shop', parseBackupText, 'pre-migration'],
    ['/backup', 'list shop', parseBackupText, 'list'],
    ['/backup', 'diff shop-20261201T020000Z shop-20261202T020000Z', parseBackupText, 'diff'],
    ['/backup', 'status', parseBackupText, 'status'],
    ['/backup', 'health shop', parseBackupText, 'health'],
    ['/backup', 'checklist weekly', parseBackupText, 'checklist'],
    ['/backup', 'audit 5', parseBackupText, 'audit'],
    ['/backup', 'help', parseBackupText, 'help'],
    ['/restore-test', 'latest shop', parseRestoreTestText, 'latest', 'run'],
    ['/restore-test', 'history shop', parseRestoreTestText, 'history'],
    ['/restore-test', 'pitr shop latest', parseRestoreTestText, 'pitr'],
    ['/restore-test', 'pitr shop 2026-12-03T14:30:00+01:00', parseRestoreTestText, 'pitr'],
    ['/restore', 'list shop', parseRestoreText, 'list'],
    ['/restore', 'drop shop_restored', parseRestoreText, 'drop'],
  ];
  it.each(examples)('%s %s: named in the usage hint and understood by the bot', (command, text, parse, word, verb) => {
    expect(commands.get(command)?.usage_hint).toContain(word);
    expect(parse(text).verb).toBe(verb ?? word);
  });

  it('turns on the App Home and subscribes to its opening (the dashboard is published then)', () => {
    expect(manifest.features.app_home.home_tab_enabled).toBe(true);
    expect(manifest.settings.event_subscriptions.bot_events).toEqual(['app_home_opened']);
  });

  it('names every option of /restore in its hint', () => {
    for (const option of ['--into=', '--table=', '--schema=', '--to=restore-server', '--with-globals', '<backup-id>']) {
      expect(commands.get('/restore')?.usage_hint).toContain(option);
    }
    expect(commands.get('/restore-test')?.usage_hint).toContain('<backup-id>');
  });
});
