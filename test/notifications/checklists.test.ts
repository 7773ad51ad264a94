import { describe, expect, it } from 'vitest';
import {
  CHECKLIST_ACTION_ID,
  DEFAULT_CHECKLISTS,
  type ChecklistItem,
  applyTick,
  checklistItems,
  checklistMessage,
  chunkItems,
  parseChecklistBlockId,
  selectedIds,
} from '../../src/notifications/checklists.ts';
import type { Block } from '../../src/notifications/types.ts';

type Option = { text: { type: string; text: string }; description?: { type: string; text: string }; value: string };
type Checkboxes = { type: 'checkboxes'; action_id: string; options: Option[]; initial_options?: Option[] };

const elements = (blocks: Block[] | undefined): Array<{ blockId: string; el: Checkboxes }> =>
  (blocks ?? []).filter((b) => b.type === 'actions').map((b) => ({ blockId: b.block_id as string, el: (b.elements as Checkboxes[])[0] as Checkboxes }));

const daily = () =>
  checklistItems(DEFAULT_CHECKLISTS.daily, {
    'backup-ran': { ok: true, evidence: 'shop-20261125T010000Z finished 02:41, 1.2 GB' },
    'size-normal': { ok: false, evidence: '48 % of the median of the previous 7' },
  });

describe('DEFAULT_CHECKLISTS', () => {
  it('has the four lists, each with bot-verifiable items and items left to people', () => {
    expect(Object.keys(DEFAULT_CHECKLISTS)).toEqual(['daily', 'weekly', 'monthly', 'pre-migration']);
    for (const [kind, defs] of Object.entries(DEFAULT_CHECKLISTS)) {
      expect(
        defs.some((d) => d.verifier !== null),
        kind,
      ).toBe(true);
      expect(
        defs.some((d) => d.verifier === null),
        kind,
      ).toBe(true);
      expect(new Set(defs.map((d) => d.id)).size, kind).toBe(defs.length);
    }
    expect(DEFAULT_CHECKLISTS.daily.map((d) => d.verifier)).toEqual(['backup-ran', 'size-normal', 'disk-space', null]);
    expect(DEFAULT_CHECKLISTS.weekly.map((d) => d.verifier)).toEqual(['retention-applied', 'newest-lists', null]);
  });
});

describe('checklistMessage', () => {
  it('ticks passed bot checks with their evidence, leaves failed and human items open', () => {
    const msg = checklistMessage('daily', daily(), 1, '2026-11-25');
    expect(msg.text).toBe('Daily backup checklist — 2026-11-25: 1 of 4 done');
    const [{ blockId, el }] = elements(msg.blocks) as [{ blockId: string; el: Checkboxes }];
    expect(blockId).toBe('checklist:daily:v1:0');
    expect(el.action_id).toBe(CHECKLIST_ACTION_ID);
    expect(el.options.map((o) => o.value)).toEqual(['backup-ran', 'size-normal', 'disk-space', 'alerts-reviewed']);
    expect(el.options[0]?.description?.text).toBe(':robot_face: shop-20261125T010000Z finished 02:41, 1.2 GB');
    expect(el.options[1]?.description?.text).toBe(':x: 48 % of the median of the previous 7');
    expect(el.options[3]?.description).toBeUndefined();
    expect(el.initial_options?.map((o) => o.value)).toEqual(['backup-ran']);
  });

  it('initial_options are exactly the options (same objects, same fields)', () => {
    const items = applyTick(daily(), ['backup-ran', 'alerts-reviewed'], 'U123', '2026-11-25T09:14:00Z').items;
    for (const { el } of elements(checklistMessage('daily', items, 2).blocks)) {
      for (const initial of el.initial_options ?? []) expect(el.options).toContainEqual(initial);
    }
    const { el } = elements(checklistMessage('daily', items, 2).blocks)[0]!;
    expect(el.initial_options?.map((o) => o.value)).toEqual(['backup-ran', 'alerts-reviewed']);
    expect(el.options[3]?.description?.text).toBe('ticked by <@U123> at 2026-11-25 09:14 UTC+00:00');
  });

  it('shows when a box was ticked in the configured zone, with its offset', () => {
    const items = applyTick(daily(), ['backup-ran', 'alerts-reviewed'], 'U123', '2026-11-25T09:14:00Z').items;
    const msg = checklistMessage('daily', items, 2, 'Wed 2026-11-25', 'Europe/Paris');
    expect(elements(msg.blocks)[0]?.el.options[3]?.description?.text).toBe('ticked by <@U123> at 2026-11-25 10:14 UTC+01:00');
    expect(JSON.stringify(msg.blocks)).toContain('Overnight alerts in this channel reviewed: ticked by <@U123> at 2026-11-25 10:14 UTC+01:00');
  });

  it('splits more than 10 items over several elements and changes every block_id with the version', () => {
    const many: ChecklistItem[] = Array.from({ length: 23 }, (_, i) => ({
      id: `i${i}`,
      label: `Item ${i}`,
      verified: null,
      ticked: i === 12 ? { by: 'U1', at: '2026-11-25T09:00:00Z' } : null,
    }));
    const v3 = elements(checklistMessage('monthly', many, 3).blocks);
    expect(v3.map((e) => e.el.options.length)).toEqual([10, 10, 3]);
    expect(v3.map((e) => e.blockId)).toEqual(['checklist:monthly:v3:0', 'checklist:monthly:v3:1', 'checklist:monthly:v3:2']);
    expect(v3.map((e) => e.el.initial_options?.map((o) => o.value))).toEqual([undefined, ['i12'], undefined]);
    const v4 = elements(checklistMessage('monthly', many, 4).blocks).map((e) => e.blockId);
    expect(v4.filter((id) => v3.some((e) => e.blockId === id))).toEqual([]);
    expect(parseChecklistBlockId('checklist:monthly:v4:2')).toEqual({ kind: 'monthly', version: 4, chunk: 2 });
    expect(parseChecklistBlockId('backup:x')).toBeNull();
    expect(chunkItems(many)[2]?.map((i) => i.id)).toEqual(['i20', 'i21', 'i22']);
  });

  it('keeps option text within Slack’s 75 characters and shows full evidence in a section', () => {
    const long = 'x'.repeat(200);
    const msg = checklistMessage('weekly', [{ id: 'newest-lists', label: long, verified: { ok: true, evidence: `<${long}>` }, ticked: null }], 1);
    const { el } = elements(msg.blocks)[0]!;
    expect(el.options[0]?.text.text).toHaveLength(75);
    expect(el.options[0]?.description?.text.length).toBeLessThanOrEqual(75);
    const detail = msg.blocks?.at(-1) as unknown as { text: { text: string } };
    expect(detail.text.text).toContain(`&lt;${long}&gt;`);
    // Clipping never leaves half an escaped entity behind.
    const amp = checklistMessage('weekly', [{ id: 'x', label: 'x', verified: { ok: true, evidence: `${'a'.repeat(59)}&&&&` }, ticked: null }], 1);
    expect(elements(amp.blocks)[0]?.el.options[0]?.description?.text).toBe(`:robot_face: ${'a'.repeat(59)}…`);
  });
});

describe('the pre-migration checklist', () => {
  const preMigration = (backupOk: boolean, testOk: boolean) =>
    checklistItems(DEFAULT_CHECKLISTS['pre-migration'], {
      'pre-migration-backup': backupOk ? { ok: true, evidence: 'shop-20261125T010000Z: 157 MB' } : { ok: false, evidence: 'backup FAILED: disk full' },
      'pre-migration-restore-tested': testOk
        ? { ok: true, evidence: 'restore test passed' }
        : { ok: false, evidence: 'restore test FAILED: row counts differ' },
    });
  const sections = (m: ReturnType<typeof checklistMessage>) =>
    (m.blocks ?? []).filter((b) => b.type === 'section').map((b) => (b.text as { text: string }).text);
  const WARNING = /^:no_entry: \*No tested restore point: do not start the migration\.\*/;

  it('says in so many words not to migrate when the backup or its restore test failed, whatever people tick', () => {
    for (const [backupOk, testOk] of [
      [false, false],
      [true, false],
    ] as const) {
      const items = preMigration(backupOk, testOk);
      const message = checklistMessage('pre-migration', items, 1, 'JIRA-1 (shop)');
      expect(sections(message)[1]).toMatch(WARNING);
      // The notification text (what a phone shows) says it too.
      expect(message.text).toMatch(/^Pre-migration checklist — JIRA-1 \(shop\): [01] of 3 done — no tested restore point, do not migrate$/);
      // A person ticking the failed box does not make a restore point.
      const ticked = applyTick(items, ['pre-migration-backup', 'pre-migration-restore-tested'], 'U1', '2026-11-25T09:00:00Z').items;
      expect(sections(checklistMessage('pre-migration', ticked, 2, 'JIRA-1 (shop)'))[1]).toMatch(WARNING);
    }
  });

  it('has no warning when both passed, and other checklists never carry it', () => {
    const passed = checklistMessage('pre-migration', preMigration(true, true), 1, 'JIRA-1 (shop)');
    expect(sections(passed).some((t) => WARNING.test(t))).toBe(false);
    expect(passed.text).toBe('Pre-migration checklist — JIRA-1 (shop): 2 of 3 done');
    expect(sections(checklistMessage('daily', daily(), 1)).some((t) => WARNING.test(t))).toBe(false);
  });
});

describe('applyTick', () => {
  const at = '2026-11-25T09:14:00Z';

  it('records who ticked what and when, and reports only the change', () => {
    const { items, changes } = applyTick(daily(), ['backup-ran', 'alerts-reviewed'], 'U123', at);
    expect(changes).toEqual([{ itemId: 'alerts-reviewed', action: 'ticked', by: 'U123', at, previous: null }]);
    expect(items.find((i) => i.id === 'alerts-reviewed')?.ticked).toEqual({ by: 'U123', at });
    expect(selectedIds(items)).toEqual(['backup-ran', 'alerts-reviewed']);
  });

  it('lets a person tick a failed bot check, but not untick a passed one', () => {
    const { changes } = applyTick(daily(), ['size-normal'], 'U9', at);
    expect(changes).toEqual([{ itemId: 'size-normal', action: 'ticked', by: 'U9', at, previous: null }]);
    expect(applyTick(daily(), [], 'U9', at).changes).toEqual([]);
  });

  it('a failed check ticked by a person does not read as done: counted apart and said above the boxes (QA)', () => {
    const { items } = applyTick(daily(), ['size-normal'], 'U9', at);
    const m = checklistMessage('daily', items, 2);
    const n = items.length;
    expect(m.text).toBe(`Daily backup checklist: 2 of ${n} done, 1 ticked over a failed check`);
    expect(JSON.stringify(m.blocks)).toContain(`(2 of ${n} done, 1 ticked over a failed check)`);
    const said = (m.blocks ?? []).map((b) => JSON.stringify(b)).find((b) => b.includes("Ticked although the bot's check failed"));
    expect(said).toContain(`:warning: Ticked although the bot's check failed: ${items.find((i) => i.id === 'size-normal')?.label}. The check still fails`);
    // Not ticked over: nothing said.
    expect(JSON.stringify(checklistMessage('daily', daily(), 2).blocks)).not.toContain('ticked over');
  });

  it('records an untick with whose tick it took back', () => {
    const ticked = applyTick(daily(), ['backup-ran', 'disk-space'], 'U1', at).items;
    const { changes, items } = applyTick(ticked, ['backup-ran'], 'U2', '2026-11-25T10:00:00Z');
    expect(changes).toEqual([{ itemId: 'disk-space', action: 'unticked', by: 'U2', at: '2026-11-25T10:00:00Z', previous: { by: 'U1', at } }]);
    expect(items.find((i) => i.id === 'disk-space')?.ticked).toBeNull();
  });

  it('a click on a stale copy changes only what that click toggled', () => {
    const v1 = daily();
    const v2 = applyTick(v1, ['backup-ran', 'disk-space'], 'U1', at).items; // U1 ticked disk-space
    // U2's client still shows v1 and ticks alerts-reviewed: its selection lacks disk-space.
    const { changes, items } = applyTick(v2, ['backup-ran', 'alerts-reviewed'], 'U2', at, { shown: selectedIds(v1) });
    expect(changes.map((c) => `${c.action} ${c.itemId}`)).toEqual(['ticked alerts-reviewed']);
    expect(items.find((i) => i.id === 'disk-space')?.ticked?.by).toBe('U1');
  });

  it('only touches the items of the clicked element', () => {
    const many: ChecklistItem[] = Array.from({ length: 12 }, (_, i) => ({
      id: `i${i}`,
      label: `Item ${i}`,
      verified: null,
      ticked: i === 11 ? { by: 'U1', at } : null,
    }));
    const scope = chunkItems(many)[0]?.map((i) => i.id);
    const { changes } = applyTick(many, ['i0'], 'U2', at, scope ? { scope } : {});
    expect(changes.map((c) => c.itemId)).toEqual(['i0']);
  });

  it('ignores ids that are not on the list', () => {
    expect(applyTick(daily(), ['backup-ran', 'rm -rf /'], 'U1', at).changes).toEqual([]);
  });
});
