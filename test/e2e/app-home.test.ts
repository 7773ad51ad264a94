import { rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { buildHome, HOME_BACKUP_ACTION, HOME_RESTORE_TEST_ACTION } from '../../src/commands/home.ts';
import { defaultTarget } from '../../src/config-targets.ts';
import { validateBlocks } from '../support/slack-blocks.ts';
import { clickInHome, openHome } from '../support/slack-requests.ts';
import { SIGNING_SECRET, startHarness, type Harness } from './harness.ts';

let h: Harness;
let cfg: string;

beforeAll(async () => {
  cfg = join(tmpdir(), `pgbb-home-${process.pid}-${Date.now()}.yml`);
  await writeFile(cfg, 'roles:\n  viewer: [U0VIEW]\n  operator: [U0OPS]\n  admin: [U0ADMIN]\n');
  h = await startHarness({ pgUrl: inject('pgUrl'), redisUrl: inject('redisUrl'), env: { BOT_CONFIG: cfg } });
});

afterAll(async () => {
  await h?.stop();
  await rm(cfg, { force: true });
});

const signing = () => ({ url: h.eventsUrl, signingSecret: SIGNING_SECRET });

/** The next App Home published for `user` after `since` views, whose blocks match. */
async function published(user: string, since: number, match: RegExp, timeoutMs = 60_000): Promise<string> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const view = h.slack.homes.slice(since).find((v) => v.user === user && match.test(JSON.stringify(v.blocks)));
    if (view) return JSON.stringify(view.blocks);
    if (Date.now() > end) throw new Error(`no App Home for ${user} matching ${match}; last: ${JSON.stringify(h.slack.homes.at(-1))}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('the App Home: a live dashboard in Slack', () => {
  it('is published when a user opens it: each target, its newest backup, last restore test, health, next runs, two buttons', async () => {
    const since = h.slack.homes.length;
    const res = await openHome({ ...signing(), userId: 'U0OPS' });
    expect(res.status).toBe(200);
    const blocks = await published('U0OPS', since, /PostgreSQL backups/);
    expect(blocks).toContain('*shop* (production)');
    expect(blocks).toContain('Newest backup: none yet');
    expect(blocks).toContain('Last restore test: none yet');
    // Every failing condition with its evidence (a target waiting for its first backup is a quiet warning).
    expect(blocks).toContain(':warning: backup too old: no backup of shop yet; the first scheduled backup is due at');
    expect(blocks).toMatch(/Next: [^"]*backup/i);
    expect(blocks).toContain(HOME_BACKUP_ACTION);
    expect(blocks).toContain(HOME_RESTORE_TEST_ACTION);
    // The stand-in records a view only when it passes Slack's rules (type home, ≤ 100 blocks, text limits).
    expect(h.slack.homes.at(-1)?.blocks.length).toBeLessThanOrEqual(100);
  });

  it('refuses a button to a user without the role, as the slash command would, and says so in the Home', async () => {
    const since = h.slack.homes.length;
    await clickInHome({ ...signing(), userId: 'U0VIEW', action: { action_id: HOME_BACKUP_ACTION, value: 'shop' } });
    const blocks = await published('U0VIEW', since, /Refused/);
    expect(blocks).toMatch(/Refused: `\/backup now` needs the \*operator\* role; you have \*viewer\*/);
    expect(await h.service.deps.queues.backup.count()).toBe(0);
  });

  it('backs up from its button, says the job, and shows the backup once it has finished', async () => {
    const since = h.slack.homes.length;
    await clickInHome({ ...signing(), userId: 'U0OPS', action: { action_id: HOME_BACKUP_ACTION, value: 'shop' } });
    const clicked = await published('U0OPS', since, /queued: job/);
    const jobId = /job `([^`]+)`/.exec(clicked)?.[1];
    expect(jobId).toMatch(/^backup-shop-/);
    // Refreshed for everyone who opened it when the job ends, without anyone opening it again.
    const after = h.slack.homes.length;
    const refreshed = await published('U0OPS', after, /Newest backup: `shop-\d{8}T\d{6}Z(-\d+)?`/, 120_000);
    // Its age, its size and how long it took.
    expect(refreshed).toMatch(/Newest backup: `shop-\d{8}T\d{6}Z(-\d+)?`, [^·]* ago · \d[\d.]* (B|KB|MB) in /);
    expect(refreshed).not.toContain('queued: job');
    // No check passes for want of anything to judge: the restore test never run is named, not counted as passing.
    expect(refreshed).toMatch(
      /:white_check_mark: \d+ of \d+ health checks pass; :white_circle: not judged yet: [^"]*last restore test \(no restore test recorded\)/,
    );
    expect(refreshed).not.toMatch(/All \d+ health checks pass/);
    expect(h.slack.homes.slice(after).some((v) => v.user === 'U0VIEW')).toBe(true);

    const beforeTest = h.slack.homes.length;
    await clickInHome({ ...signing(), userId: 'U0OPS', action: { action_id: HOME_RESTORE_TEST_ACTION, value: 'shop' } });
    const tested = await published('U0OPS', beforeTest, /Restore test of `shop-\d{8}T\d{6}Z(-\d+)?` queued/);
    expect(tested).toMatch(/job `restore-test-/);
    await published('U0OPS', beforeTest, /Last restore test: :white_check_mark: passed, [^·]* ago · restore time \(RTO\)/, 120_000);
  });

  it('stays within Slack’s 100 blocks with many targets, and counts the ones it leaves out', async () => {
    const targets = Array.from({ length: 25 }, (_, i) => defaultTarget(`t${String(i).padStart(2, '0')}`, h.source.url));
    const view = await buildHome({
      config: { ...h.config, targets },
      storage: h.service.deps.storage,
      queue: h.service.deps.queues.backup,
      runs: h.service.deps.runs,
    });
    expect(view.blocks.length).toBeLessThanOrEqual(100);
    expect(validateBlocks(view.blocks, 100)).toBeNull();
    expect(JSON.stringify(view.blocks)).toContain('… and 7 more targets: `/backup health` lists them all.');
  });
});
