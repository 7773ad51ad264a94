import { formatInZone } from '../schedules/index.ts';
import { escapeMrkdwn } from '../format.ts';
import type { Block, ChannelMessage } from './types.ts';

/**
 * Checklist reminders for #incidents (issue 4): Block Kit checkboxes, pure. The bot ticks what it can verify and
 * shows the evidence; people tick the rest, and each tick shows who and when. applyTick returns the changes so
 * the caller can append them to the audit trail before updating the message.
 */

export type ChecklistKind = 'daily' | 'weekly' | 'monthly' | 'pre-migration';

/** The checks the bot can run itself; each id names one verifier the reminder worker implements. */
export type VerifierId =
  | 'backup-ran'
  | 'size-normal'
  | 'disk-space'
  | 'retention-applied'
  | 'newest-lists'
  | 'restore-test-documented'
  | 'retention-compliant'
  | 'pre-migration-backup'
  | 'pre-migration-restore-tested';

export interface ChecklistItemDef {
  id: string;
  label: string;
  /** null: only a person can tell (the item stays open until someone ticks it). */
  verifier: VerifierId | null;
}

export const DEFAULT_CHECKLISTS: Readonly<Record<ChecklistKind, readonly ChecklistItemDef[]>> = {
  daily: [
    { id: 'backup-ran', label: "Last night's backups ran", verifier: 'backup-ran' },
    { id: 'size-normal', label: 'Backup sizes look normal', verifier: 'size-normal' },
    { id: 'disk-space', label: 'Backup disk has room', verifier: 'disk-space' },
    { id: 'alerts-reviewed', label: 'Overnight alerts in this channel reviewed', verifier: null },
  ],
  weekly: [
    { id: 'retention-applied', label: 'Retention applied (expired backups deleted)', verifier: 'retention-applied' },
    { id: 'newest-lists', label: '`pg_restore --list` of the newest backup passes', verifier: 'newest-lists' },
    { id: 'failures-investigated', label: "This week's failed jobs investigated", verifier: null },
  ],
  monthly: [
    { id: 'restore-test-documented', label: 'Full restore test done and documented', verifier: 'restore-test-documented' },
    { id: 'retention-compliant', label: 'Retention policy compliance', verifier: 'retention-compliant' },
    { id: 'rto-reviewed', label: 'Restore time (RTO) reviewed against the target', verifier: null },
  ],
  'pre-migration': [
    { id: 'pre-migration-backup', label: 'Pre-migration backup made', verifier: 'pre-migration-backup' },
    { id: 'pre-migration-restore-tested', label: 'Pre-migration backup restore-tested', verifier: 'pre-migration-restore-tested' },
    { id: 'restore-point-documented', label: 'Restore point documented in the migration ticket', verifier: null },
  ],
};

export interface Verification {
  ok: boolean;
  evidence: string;
}

export interface ChecklistItem {
  id: string;
  label: string;
  verified: Verification | null;
  ticked: { by: string; at: string } | null;
}

export interface TickChange {
  itemId: string;
  action: 'ticked' | 'unticked';
  by: string;
  at: string;
  /** For an untick: whose tick was taken back. */
  previous: { by: string; at: string } | null;
}

const TITLE: Record<ChecklistKind, string> = {
  daily: 'Daily backup checklist',
  weekly: 'Weekly backup checklist',
  monthly: 'Monthly backup checklist',
  'pre-migration': 'Pre-migration checklist',
};

export const CHECKLIST_ACTION_ID = 'checklist-tick';
/** Slack renders at most 10 options per checkboxes element. */
export const MAX_OPTIONS_PER_ELEMENT = 10;

/** A fresh checklist from its definitions and whatever the verifiers found (missing: not verified). */
export function checklistItems(defs: readonly ChecklistItemDef[], results: Partial<Record<VerifierId, Verification>>): ChecklistItem[] {
  return defs.map((d) => ({ id: d.id, label: d.label, verified: d.verifier ? (results[d.verifier] ?? null) : null, ticked: null }));
}

/** A bot-verified pass is the bot's to tick: people cannot untick evidence. */
const botOwned = (item: ChecklistItem) => item.verified?.ok === true;
const isSelected = (item: ChecklistItem) => botOwned(item) || item.ticked !== null;

/** Ids shown ticked: passed bot checks and people's ticks. */
export function selectedIds(items: readonly ChecklistItem[]): string[] {
  return items.filter(isSelected).map((i) => i.id);
}

/** Items in groups of ≤ 10, one checkboxes element each; the action handler uses the same split. */
export function chunkItems<T>(items: readonly T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += MAX_OPTIONS_PER_ELEMENT) out.push(items.slice(i, i + MAX_OPTIONS_PER_ELEMENT));
  return out;
}

/** Block ids change with every version: clients may ignore new `initial_options` under an unchanged block_id. */
export function checklistBlockId(kind: ChecklistKind, version: number, chunk: number): string {
  return `checklist:${kind}:v${version}:${chunk}`;
}

export function parseChecklistBlockId(blockId: string): { kind: ChecklistKind; version: number; chunk: number } | null {
  const m = /^checklist:(daily|weekly|monthly|pre-migration):v(\d+):(\d+)$/.exec(blockId);
  return m ? { kind: m[1] as ChecklistKind, version: Number(m[2]), chunk: Number(m[3]) } : null;
}

// Never cut an escaped entity (`&amp;`) in half: Slack would show the fragment.
const clip = (s: string, max: number) => (s.length <= max ? s : `${s.slice(0, max - 1).replace(/&[a-z]{0,3}$/, '')}…`);
// `2026-11-23 10:12 UTC+01:00`: in the configured zone like every other time in the checklist, offset included.
const time = (iso: string, tz: string) => formatInZone(new Date(iso), tz).replace(/^[A-Z][a-z]{2} /, '');

function statusLine(item: ChecklistItem, tz: string): string {
  const parts: string[] = [];
  if (item.verified) parts.push(`${item.verified.ok ? ':robot_face:' : ':x:'} ${escapeMrkdwn(item.verified.evidence)}`);
  if (item.ticked) parts.push(`ticked by <@${item.ticked.by}> at ${time(item.ticked.at, tz)}`);
  return parts.join(' · ');
}

function option(item: ChecklistItem, tz: string): Record<string, unknown> {
  const status = statusLine(item, tz);
  // Slack caps option text and description at 75 characters; the full evidence goes in the section below.
  return {
    text: { type: 'mrkdwn', text: clip(item.label, 75) },
    ...(status ? { description: { type: 'mrkdwn', text: clip(status, 75) } } : {}),
    value: item.id.slice(0, 150),
  };
}

/**
 * Before a migration, a failed bot check means there is no tested restore point. Said in so many words, above the
 * boxes and whatever people tick: a person's tick cannot turn a failed backup into a restore point.
 */
const NO_RESTORE_POINT =
  ':no_entry: *No tested restore point: do not start the migration.* Fix what failed below, then run `/backup pre-migration <label>` again.';

/** `tz`: the configured time zone, in which the ticks' times are shown. */
export function checklistMessage(kind: ChecklistKind, items: readonly ChecklistItem[], version: number, subtitle?: string, tz = 'UTC'): ChannelMessage {
  const done = selectedIds(items).length;
  const title = `${TITLE[kind]}${subtitle ? ` — ${subtitle}` : ''}`;
  // A person may tick over a failed bot check (they looked themselves), but the list does not then read as done
  // (QA: "4 of 4 done" with a :x: still on one of them).
  const over = items.filter((i) => i.verified?.ok === false && i.ticked !== null);
  const overSaid = over.length ? `, ${over.length} ticked over a failed check` : '';
  const blocks: Block[] = [{ type: 'section', text: { type: 'mrkdwn', text: `*${escapeMrkdwn(title)}* (${done} of ${items.length} done${overSaid})` } }];
  const noRestorePoint = kind === 'pre-migration' && items.some((i) => i.verified?.ok === false);
  if (noRestorePoint) blocks.push({ type: 'section', text: { type: 'mrkdwn', text: NO_RESTORE_POINT } });
  if (over.length)
    blocks.push({
      type: 'section',
      text: {
        type: 'mrkdwn',
        text: clip(
          `:warning: Ticked although the bot's check failed: ${over.map((i) => escapeMrkdwn(i.label)).join('; ')}. The check still fails (a tick is a person's word, not evidence): fix what it found, or say in the thread why the tick stands.`,
          3000,
        ),
      },
    });
  chunkItems(items).forEach((chunk, n) => {
    const options = chunk.map((item) => option(item, tz));
    // The very same objects in initial_options: Slack refuses to render one that differs from its option at all.
    const initial = chunk.flatMap((item, i) => (isSelected(item) ? [options[i]] : []));
    blocks.push({
      type: 'actions',
      block_id: checklistBlockId(kind, version, n),
      elements: [{ type: 'checkboxes', action_id: CHECKLIST_ACTION_ID, options, ...(initial.length > 0 ? { initial_options: initial } : {}) }],
    });
  });
  const details = items.filter((i) => i.verified || i.ticked).map((i) => `• ${escapeMrkdwn(i.label)}: ${statusLine(i, tz)}`);
  if (details.length > 0) blocks.push({ type: 'section', text: { type: 'mrkdwn', text: clip(details.join('\n'), 3000) } });
  // The text is the notification on the phone of whoever waits to migrate: it says so too.
  return { text: `${title}: ${done} of ${items.length} done${overSaid}${noRestorePoint ? ' — no tested restore point, do not migrate' : ''}`, blocks };
}

/**
 * A click on one checkboxes element: `selected` is that element's whole selection as the clicker's client saw
 * it. Only what differs from `shown` (the ids ticked in the version that client displayed; default: the current
 * state) is applied, so a click on a stale copy cannot untick someone else's newer tick. `scope` limits the
 * change to the clicked element's items (chunkItems); passed bot checks never change.
 */
export function applyTick(
  items: readonly ChecklistItem[],
  selected: readonly string[],
  userId: string,
  at: string,
  opts: { scope?: readonly string[]; shown?: readonly string[] } = {},
): { items: ChecklistItem[]; changes: TickChange[] } {
  const scope = new Set(opts.scope ?? items.map((i) => i.id));
  const shown = new Set(opts.shown ?? selectedIds(items));
  const now = new Set(selected);
  const changes: TickChange[] = [];
  const next = items.map((item) => {
    if (!scope.has(item.id) || botOwned(item) || now.has(item.id) === shown.has(item.id)) return item;
    if (now.has(item.id) && item.ticked === null) {
      changes.push({ itemId: item.id, action: 'ticked', by: userId, at, previous: null });
      return { ...item, ticked: { by: userId, at } };
    }
    if (!now.has(item.id) && item.ticked !== null) {
      changes.push({ itemId: item.id, action: 'unticked', by: userId, at, previous: item.ticked });
      return { ...item, ticked: null };
    }
    return item;
  });
  return { items: next, changes };
}
