import { dataLines, schemaLines, type DriftPair } from '../drift/index.ts';
import { escapeMrkdwn } from '../format.ts';
import type { ChannelMessage } from './types.ts';

/** Pure builders for drift between two backups: a backup's thread, the pre-migration checklist's thread, `/backup diff`. */

const bullets = (lines: string[]) => lines.map((l) => `• ${escapeMrkdwn(l)}`).join('\n');

function sections(d: DriftPair): string {
  return `*Schema*\n${bullets(schemaLines(d.schema))}\n*Rows*\n${bullets(dataLines(d.data, d.earlier))}`;
}

function message(text: string): ChannelMessage {
  const body = text.length > 2900 ? `${text.slice(0, 2900)}…` : text;
  return { text: body, blocks: [{ type: 'section', text: { type: 'mrkdwn', text: body } }] };
}

/** A backup's thread: what changed since the backup before it. */
export function driftSinceMessage(d: DriftPair): ChannelMessage {
  return message(`:mag: *Since \`${d.earlier}\`*\n${sections(d)}`);
}

/** Under a pre-migration checklist: what the database looked like before the migration, against the last scheduled backup. */
export function preMigrationDriftMessage(d: DriftPair | null, label: string): ChannelMessage {
  if (!d) return message(`:mag: No scheduled backup to compare the pre-migration backup *${escapeMrkdwn(label)}* with.`);
  return message(`:mag: *Drift from the last scheduled backup \`${d.earlier}\` to the pre-migration backup \`${d.later}\`*\n${sections(d)}`);
}

/** `/backup diff <a> <b>`: both drifts, the earlier backup first whatever order they were given in. */
export function diffText(d: DriftPair): string {
  return `*\`${d.earlier}\` → \`${d.later}\`*\n${sections(d)}`.slice(0, 3900);
}
