import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import type { AuditEntry, AuditLog } from '../../src/audit.ts';
import { checklistTickAction, type CheckboxClick } from '../../src/commands/checklist-action.ts';
import { createChecklistStore, initialState, type ChecklistStore } from '../../src/checklists/state.ts';
import { CHECKLIST_ACTION_ID, checklistItems, DEFAULT_CHECKLISTS } from '../../src/notifications/checklists.ts';
import type { ChannelMessage, MessageRef } from '../../src/notifications/types.ts';
import { silentLog } from '../support/postgres-helpers.ts';

const ref: MessageRef = { channel: 'C0INCIDENTS', ts: '1700000000.000100' };

function auditLog(): AuditLog & { entries: Array<Omit<AuditEntry, 'at'>> } {
  const entries: Array<Omit<AuditEntry, 'at'>> = [];
  return { entries, append: async (e) => void entries.push(e), flush: async () => undefined, tail: async () => [] };
}

/** The real Redis store, with a pause between reading and returning: the window in which lost updates happen. */
function slowLoads(store: ChecklistStore, ms: number): ChecklistStore {
  return {
    ...store,
    async load(r) {
      const s = await store.load(r);
      await new Promise((res) => setTimeout(res, ms));
      return s;
    },
  };
}

const click = (userId: string, selected: string[], version = 1): CheckboxClick => ({
  userId,
  userName: userId.toLowerCase(),
  actionId: CHECKLIST_ACTION_ID,
  value: '',
  channel: ref.channel,
  messageTs: ref.ts,
  blockId: `checklist:daily:v${version}:0`,
  selected,
});

describe('checklistTickAction', () => {
  let redis: Redis;
  let store: ChecklistStore;
  beforeAll(() => {
    redis = new Redis(inject('redisUrl'), { maxRetriesPerRequest: null });
  });
  afterAll(async () => {
    await redis.quit();
  });
  beforeEach(async () => {
    store = createChecklistStore(redis, `{tick-${randomUUID().slice(0, 8)}}`);
    const items = checklistItems(DEFAULT_CHECKLISTS.daily, {
      'disk-space': { ok: true, evidence: '60 % free' },
      'backup-ran': { ok: false, evidence: 'no backup' },
    });
    await store.create(ref, initialState('daily', items, null));
  });

  it('applies simultaneous ticks one after the other: none is lost, and the message updates leave in version order', async () => {
    const updates: ChannelMessage[] = [];
    const audit = auditLog();
    const act = checklistTickAction({ store: slowLoads(store, 40), notifier: { update: async (_r, m) => void updates.push(m) }, audit, log: silentLog });
    const replies = await Promise.all([
      act(click('U1', ['disk-space', 'backup-ran'])),
      act(click('U2', ['disk-space', 'size-normal'])),
      act(click('U3', ['disk-space', 'alerts-reviewed'])),
    ]);
    expect(replies.every((r) => r.quiet)).toBe(true);
    const state = await store.load(ref);
    expect(state?.version).toBe(4);
    expect(
      state?.items
        .filter((i) => i.ticked)
        .map((i) => i.ticked?.by)
        .sort(),
    ).toEqual(['U1', 'U2', 'U3']);
    expect(updates.map((u) => JSON.stringify(u.blocks).match(/checklist:daily:v(\d+):0/)?.[1])).toEqual(['2', '3', '4']);
    expect(updates.at(-1)?.text).toMatch(/4 of 4 done/);
    expect(audit.entries.map((e) => e.args).sort()).toEqual([
      `daily alerts-reviewed ticked (message ${ref.channel}/${ref.ts})`,
      `daily backup-ran ticked (message ${ref.channel}/${ref.ts})`,
      `daily size-normal ticked (message ${ref.channel}/${ref.ts})`,
    ]);
  });

  it('shows the tick in the configured time zone', async () => {
    const updates: ChannelMessage[] = [];
    const act = checklistTickAction({
      store,
      notifier: { update: async (_r, m) => void updates.push(m) },
      audit: auditLog(),
      log: silentLog,
      now: () => new Date('2026-07-01T07:05:00Z'),
      timezone: 'Europe/Paris',
    });
    await act(click('U1', ['disk-space', 'alerts-reviewed']));
    expect(JSON.stringify(updates[0]?.blocks)).toContain('ticked by <@U1> at 2026-07-01 09:05 UTC+02:00');
  });

  it('never unticks a passed bot check, and redraws the message so the clicker sees it ticked again', async () => {
    const updates: ChannelMessage[] = [];
    const act = checklistTickAction({ store, notifier: { update: async (_r, m) => void updates.push(m) }, audit: auditLog(), log: silentLog });
    const reply = await act(click('U1', []));
    expect(reply).toMatchObject({ quiet: true, text: expect.stringMatching(/No change/) });
    expect(JSON.stringify(updates[0]?.blocks)).toContain('checklist:daily:v2:0');
    expect((await store.load(ref))?.items.find((i) => i.id === 'disk-space')?.ticked).toBeNull();
  });

  it('says so when the checklist is no longer tracked, or the copy is older than the versions remembered', async () => {
    const act = checklistTickAction({ store, notifier: { update: async () => undefined }, audit: auditLog(), log: silentLog });
    expect((await act({ ...click('U1', ['alerts-reviewed']), messageTs: '1600000000.000001' })).text).toMatch(/no longer tracked.*Nothing was changed/);
    // A message just posted whose state is not stored yet is not one that expired.
    const fresh = `${Math.floor(Date.now() / 1000) - 2}.000100`;
    expect((await act({ ...click('U1', ['alerts-reviewed']), messageTs: fresh })).text).toMatch(
      /^This checklist is still being set up; tick again in a moment\. Nothing was changed/,
    );
    expect((await act(click('U1', ['alerts-reviewed'], 99))).text).toMatch(/out-of-date copy.*Nothing was changed/);
    expect((await act({ ...click('U1', []), blockId: 'restore:v1' })).text).toMatch(/not a checklist/);
  });

  it('records the tick but tells the clicker when Slack refuses the update', async () => {
    const act = checklistTickAction({
      store,
      notifier: { update: async () => Promise.reject(new Error('message_not_found')) },
      audit: auditLog(),
      log: silentLog,
    });
    const reply = await act(click('U1', ['disk-space', 'alerts-reviewed']));
    expect(reply.quiet).toBeUndefined();
    expect(reply.text).toMatch(/Your change was recorded, but Slack did not take the updated message/);
    expect((await store.load(ref))?.items.find((i) => i.id === 'alerts-reviewed')?.ticked?.by).toBe('U1');
  });
});
