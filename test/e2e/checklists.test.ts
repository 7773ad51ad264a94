import { randomUUID } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { CHECKLIST_ACTION_ID } from '../../src/notifications/checklists.ts';
import { withClient } from '../support/postgres-helpers.ts';
import type { SlackMessage } from '../support/slack-server.ts';
import { auditLines, click, slash, startHarness, type Harness } from './harness.ts';

const OPS = ['U0OPS1', 'U0OPS2', 'U0OPS3'] as const;
const VIEWER = 'U0VIEW';
let h: Harness;
let cfg: string;

type Option = { text: { type: string; text: string }; value: string; description?: unknown };
type Checkboxes = { block_id: string; options: Option[]; initial_options?: Option[] };

/** The checkboxes elements of a checklist message, as the clicker's client has them. */
function checkboxes(m: { blocks?: unknown[] | undefined }): Checkboxes[] {
  return (m.blocks ?? []).flatMap((b) => {
    const block = b as { type: string; block_id?: string; elements?: Array<Record<string, unknown>> };
    if (block.type !== 'actions') return [];
    return (block.elements ?? []).filter((e) => e.type === 'checkboxes').map((e) => ({ ...(e as unknown as Checkboxes), block_id: block.block_id ?? '' }));
  });
}

const shownIds = (c: Checkboxes) => (c.initial_options ?? []).map((o) => o.value);

/** A click on one checkboxes element, selecting `ids`, signed as Slack signs it. */
function tick(m: SlackMessage, copy: Checkboxes, ids: string[], userId: string, responseId?: string) {
  return click(h, {
    userId,
    channelId: m.channel,
    messageTs: m.ts,
    responseId,
    message: { text: m.text, blocks: m.blocks },
    action: {
      type: 'checkboxes',
      action_id: CHECKLIST_ACTION_ID,
      block_id: copy.block_id,
      selected_options: copy.options.filter((o) => ids.includes(o.value)),
    },
  });
}

async function waitFor<T>(what: string, find: () => T | undefined | Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const found = await find();
    if (found !== undefined) return found;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}: ${[...h.slack.messages.values()].map((m) => m.text).join(' | ')}`);
}

const topLevel = (prefix: string) => [...h.slack.messages.values()].filter((m) => !m.thread_ts && (m.text ?? '').startsWith(prefix));

/** Posts a daily checklist through the checklist worker and returns its message. */
async function postDaily(): Promise<SlackMessage> {
  const before = new Set(topLevel('Daily backup checklist').map((m) => m.ts));
  await h.service.deps.queues.checklist.add('checklist', { kind: 'daily' }, { jobId: `daily-${randomUUID()}` });
  return waitFor('the daily checklist', () => topLevel('Daily backup checklist').find((m) => !before.has(m.ts)));
}

beforeAll(async () => {
  cfg = join(tmpdir(), `pgbb-checklists-${process.pid}-${Date.now()}.yml`);
  const ghost = new URL(inject('pgUrl'));
  ghost.pathname = '/pgbb_no_such_database';
  await writeFile(
    cfg,
    [
      'roles:',
      `  viewer: [${VIEWER}]`,
      `  operator: [${OPS.join(', ')}]`,
      'targets:',
      '  - name: shop',
      '    urlEnv: DATABASE_URL',
      '    environment: production',
      '  - name: ghost',
      `    url: ${ghost.toString()}`,
      '    environment: staging',
      '',
    ].join('\n'),
  );
  h = await startHarness({ pgUrl: inject('pgUrl'), redisUrl: inject('redisUrl'), pagerDuty: false, env: { BOT_CONFIG: cfg } });
});

afterAll(async () => {
  await h?.stop();
  await rm(cfg, { force: true });
});

describe('ticking a checklist in Slack', () => {
  it('shows who ticked and when in the updated message, and keeps an audit record', async () => {
    const m = await postDaily();
    const [copy] = checkboxes(m);
    if (!copy) throw new Error('no checkboxes');
    expect(copy.block_id).toBe('checklist:daily:v1:0');
    expect(shownIds(copy)).not.toContain('alerts-reviewed');

    const res = await tick(m, copy, [...shownIds(copy), 'alerts-reviewed'], OPS[0]);
    expect(res.status).toBe(200);
    const update = await h.slack.waitFor((c) => c.method === 'chat.update' && c.body.ts === m.ts && c.response.ok === true, 10_000);
    const blocks = JSON.stringify(update.body.blocks);
    expect(blocks).toContain('checklist:daily:v2:0');
    expect(blocks).toMatch(new RegExp(`Overnight alerts in this channel reviewed: ticked by <@${OPS[0]}> at \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d UTC`));
    const now = checkboxes(h.slack.messages.get(m.ts) ?? m)[0];
    expect(now && shownIds(now)).toContain('alerts-reviewed');

    const audit = await waitFor('the audit record', async () => (await auditLines(h)).find((l) => l.what === 'checklist-item' && l.userId === OPS[0]));
    expect(audit).toMatchObject({ kind: 'action', decision: 'allowed', args: `daily alerts-reviewed ticked (message ${m.channel}/${m.ts})` });
    // The click itself is in the trail too, with the role the guard found.
    const click = await waitFor('the click audit', async () => (await auditLines(h)).find((l) => l.what === CHECKLIST_ACTION_ID && l.userId === OPS[0]));
    expect(click).toMatchObject({ decision: 'allowed', role: 'operator' });
  });

  it('refuses a viewer with an ephemeral explanation and leaves the message alone', async () => {
    const m = await postDaily();
    const [copy] = checkboxes(m);
    if (!copy) throw new Error('no checkboxes');
    const updatesBefore = h.slack.calls.filter((c) => c.method === 'chat.update').length;
    await tick(m, copy, [...shownIds(copy), 'alerts-reviewed'], VIEWER, 'viewer-tick');
    const answer = await h.slack.waitForResponse((r) => r.id === 'viewer-tick', 10_000);
    expect(answer.body).toMatchObject({ response_type: 'ephemeral', replace_original: false });
    expect(JSON.stringify(answer.body)).toMatch(/Refused: Ticking a checklist item needs the \*operator\* role; you have \*viewer\*/);
    expect(h.slack.calls.filter((c) => c.method === 'chat.update').length).toBe(updatesBefore);
    expect(h.slack.messages.get(m.ts)?.updates).toBe(0);
    const refused = (await auditLines(h)).find((l) => l.what === CHECKLIST_ACTION_ID && l.userId === VIEWER);
    expect(refused).toMatchObject({ decision: 'refused', role: 'viewer' });
  });

  it('a click on a stale copy does not untick a newer tick, and concurrent ticks all land', async () => {
    const m = await postDaily();
    const [v1] = checkboxes(m);
    if (!v1) throw new Error('no checkboxes');
    const open = v1.options.map((o) => o.value).filter((id) => !shownIds(v1).includes(id));
    // No backups yet: "backup ran" and "size normal" failed their checks and stay open, like the human item.
    expect(open).toEqual(expect.arrayContaining(['backup-ran', 'size-normal', 'alerts-reviewed']));

    // Three people tick three different boxes on the same copy at the same moment.
    const [a, b, c] = open as [string, string, string];
    await Promise.all([tick(m, v1, [...shownIds(v1), a], OPS[0]), tick(m, v1, [...shownIds(v1), b], OPS[1]), tick(m, v1, [...shownIds(v1), c], OPS[2])]);
    const after = await waitFor('three ticks', () => {
      const cur = checkboxes(h.slack.messages.get(m.ts) ?? m)[0];
      return cur && cur.block_id === 'checklist:daily:v4:0' ? cur : undefined;
    });
    expect(shownIds(after)).toEqual(expect.arrayContaining([a, b, c]));

    // Someone whose client still shows v1 unticks nothing they saw ticked: the three ticks stay.
    await tick(m, v1, shownIds(v1), OPS[0]);
    const stale = await waitFor('the stale click', () => {
      const cur = checkboxes(h.slack.messages.get(m.ts) ?? m)[0];
      return cur && cur.block_id === 'checklist:daily:v5:0' ? cur : undefined;
    });
    expect(shownIds(stale)).toEqual(expect.arrayContaining([a, b, c]));

    // On the current copy, an untick is applied and audited with whose tick it took back.
    await tick(
      m,
      stale,
      shownIds(stale).filter((id) => id !== c),
      OPS[0],
    );
    const latest = await waitFor('the untick', () => {
      const cur = checkboxes(h.slack.messages.get(m.ts) ?? m)[0];
      return cur && cur.block_id === 'checklist:daily:v6:0' ? cur : undefined;
    });
    expect(shownIds(latest)).not.toContain(c);
    const untick = await waitFor('the untick audit', async () =>
      (await auditLines(h)).find((l) => l.what === 'checklist-item' && l.args.startsWith(`daily ${c} unticked`)),
    );
    expect(untick.result).toContain(`taking back <@${OPS[2]}>'s tick`);
  });
});

describe('/backup pre-migration', () => {
  it('backs up, restore-tests that backup, then posts the pre-migration checklist with both results', async () => {
    // The last scheduled backup, then a column added: the checklist's thread shows the drift between the two.
    const job = await h.service.deps.queues.backup.add('scheduled-backup', {
      target: 'shop',
      kind: 'scheduled',
      label: null,
      requestedBy: { source: 'schedule', userName: 'schedule daily' },
      schedule: { id: 'daily', retentionClass: 'daily', keepDays: 30 },
    });
    const scheduled = await waitFor(
      'the scheduled backup',
      async () => (await h.service.deps.storage.list('shop')).find((b) => b.kind === 'scheduled'),
      120_000,
    );
    // Finished, not only written: a backup job still posting its verdict is running, and a pre-migration backup
    // asked meanwhile is refused as a second backup of the target (a CI run under load met it).
    await waitFor('the scheduled backup job done', async () => ((await job.getState()) === 'completed' ? true : undefined), 60_000);
    await withClient(h.source.url, (c) => c.query('ALTER TABLE shop.customers ADD COLUMN migration_note text'));
    const reply = (await slash(h, '/backup', 'pre-migration JIRA-42', { userId: OPS[0] })).text;
    expect(reply).toMatch(/Pre-migration backup \*JIRA-42\* of \*shop\* queued: job `backup-shop-[^`]+`, kept 90 days/);
    const m = await waitFor('the pre-migration checklist', () => topLevel('Pre-migration checklist — JIRA-42 (shop)')[0], 120_000);
    const [backup] = await h.service.deps.storage.list('shop');
    if (!backup) throw new Error('no backup');
    expect(backup).toMatchObject({ kind: 'pre-migration', retentionClass: 'pre-migration', label: 'JIRA-42' });
    expect(Date.parse(backup.retainUntil ?? '') - Date.parse(backup.startedAt)).toBe(90 * 24 * 3600_000);

    expect(m.text).toBe('Pre-migration checklist — JIRA-42 (shop): 2 of 3 done');
    const shown = JSON.stringify(m.blocks);
    expect(shown).toContain(`Pre-migration backup made: :robot_face: ${backup.backupId}:`);
    expect(shown).toMatch(/restore test passed: restore time \(RTO\) [\d.]+ (ms|s)/);
    expect(shown).toMatch(/9 tables: content identical; \d+ definitions identical; .*amcheck clean.*\(level content\)/);
    const [copy] = checkboxes(m);
    if (!copy) throw new Error('no checkboxes');
    expect(shownIds(copy)).toEqual(['pre-migration-backup', 'pre-migration-restore-tested']);
    // What the database looked like before the migration: the drift since the last scheduled backup, in the thread.
    const drift = await waitFor('the drift under the checklist', () =>
      [...h.slack.messages.values()].find((x) => x.thread_ts === m.ts && (x.text ?? '').includes('Drift from the last scheduled backup')),
    );
    expect(drift.text).toContain(`Drift from the last scheduled backup \`${scheduled.backupId}\` to the pre-migration backup \`${backup.backupId}\``);
    expect(drift.text).toMatch(/migration_note/);
    // The restore test ran on that very backup.
    const [record] = await h.service.deps.storage.listRecords('restore-test', 'shop');
    expect(record).toMatchObject({ backupId: backup.backupId, passed: true });

    // People document the restore point; the message then says so, and who did it.
    await tick(m, copy, [...shownIds(copy), 'restore-point-documented'], OPS[1]);
    const done = await waitFor('the documented restore point', () => {
      const cur = h.slack.messages.get(m.ts);
      return cur?.text === 'Pre-migration checklist — JIRA-42 (shop): 3 of 3 done' ? cur : undefined;
    });
    expect(JSON.stringify(done.blocks)).toContain(`Restore point documented in the migration ticket: ticked by <@${OPS[1]}>`);
  }, 180_000);

  it('still posts the checklist when the backup fails, saying there is no restore point', async () => {
    const reply = (await slash(h, '/backup', 'pre-migration drop-legacy ghost', { userId: OPS[0] })).text;
    expect(reply).toMatch(/queued: job `backup-ghost-/);
    const m = await waitFor('the failed pre-migration checklist', () => topLevel('Pre-migration checklist — drop-legacy (ghost)')[0], 60_000);
    expect(m.text).toBe('Pre-migration checklist — drop-legacy (ghost): 0 of 3 done — no tested restore point, do not migrate');
    const shown = JSON.stringify(m.blocks);
    expect(shown).toMatch(/:x: backup FAILED \(job backup-ghost-[^)]+\): /);
    expect(shown).toContain('not run: there is no backup to test');
    expect(await h.service.deps.queues.restoreTest.getJobCountByTypes('waiting', 'active', 'completed', 'failed')).toBe(1);
  }, 90_000);

  it('refuses a label outside the safe alphabet and starts nothing', async () => {
    const before = await h.service.deps.queues.backup.count();
    expect((await slash(h, '/backup', 'pre-migration drop;table', { userId: OPS[0] })).text).toMatch(/not a valid label.*Nothing was started/s);
    expect((await slash(h, '/backup', 'pre-migration JIRA-1', { userId: VIEWER })).text).toMatch(/`\/backup pre-migration` needs the \*operator\* role/);
    expect(await h.service.deps.queues.backup.count()).toBe(before);
  });
});
