import { rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { auditLines, slash, startHarness, type Harness } from './harness.ts';

let h: Harness;

let cfg: string;

beforeAll(async () => {
  cfg = join(tmpdir(), `pgbb-roles-${process.pid}-${Date.now()}.yml`);
  await writeFile(cfg, 'roles:\n  viewer: [U0VIEW]\n  operator: [U0OPS]\n  admin: [U0ADMIN]\n');
  h = await startHarness({ pgUrl: inject('pgUrl'), redisUrl: inject('redisUrl'), env: { BOT_CONFIG: cfg } });
});

afterAll(async () => {
  await h?.stop();
  await rm(cfg, { force: true });
});

describe('roles and the audit trail', () => {
  it('lets a viewer list but not back up, and says which role is needed', async () => {
    expect((await slash(h, '/backup', 'list', { userId: 'U0VIEW' })).text).toMatch(/No finished backups/);
    const refused = (await slash(h, '/backup', 'now', { userId: 'U0VIEW' })).text;
    expect(refused).toMatch(/Refused: `\/backup now` needs the \*operator\* role; you have \*viewer\*/);
    expect(await h.service.deps.queues.backup.count()).toBe(0);
  });

  it('refuses everything to a user with no role', async () => {
    expect((await slash(h, '/backup', 'list', { userId: 'U0STRANGER' })).text).toMatch(/needs the \*viewer\* role; you have none/);
    expect((await slash(h, '/restore-test', 'latest', { userId: 'U0STRANGER' })).text).toMatch(/needs the \*operator\* role/);
  });

  it('lets an operator back up and run restore tests, but not restore into an existing database', async () => {
    expect((await slash(h, '/backup', 'now', { userId: 'U0OPS' })).text).toMatch(/queued: job/);
    expect((await slash(h, '/restore', `shop-20261124T000000Z --table=shop.customers --into=${h.source.name}`, { userId: 'U0OPS' })).text).toMatch(
      /Refused: Only <@U0ADMIN> may restore/,
    );
  });

  it('shows the audit trail to admins only, with allowed and refused commands, job ids and results', async () => {
    expect((await slash(h, '/backup', 'audit', { userId: 'U0OPS' })).text).toMatch(/needs the \*admin\* role/);
    const lines = await auditLines(h);
    const refusedNow = lines.find((l) => l.userId === 'U0VIEW' && l.args === 'now');
    expect(refusedNow).toMatchObject({ kind: 'command', what: '/backup', decision: 'refused', role: 'viewer', jobId: null });
    const allowedNow = lines.find((l) => l.userId === 'U0OPS' && l.args === 'now');
    expect(allowedNow).toMatchObject({ decision: 'allowed', role: 'operator' });
    expect(allowedNow?.jobId).toMatch(/^backup-shop-/);
    const trail = (await slash(h, '/backup', 'audit 50', { userId: 'U0ADMIN' })).text;
    expect(trail).toMatch(/Audit trail/);
    expect(trail).toContain(allowedNow?.jobId ?? 'missing');
    expect(trail).toMatch(/refused/);
    // The audit command's own line starts no job, although its answer lists job ids.
    const auditOwn = (await auditLines(h)).find((l) => l.userId === 'U0ADMIN' && l.args === 'audit 50');
    expect(auditOwn).toMatchObject({ decision: 'allowed', jobId: null });
    // Job outcomes are appended too, once the worker is done.
    const end = Date.now() + 30_000;
    while (!(await auditLines(h)).some((l) => l.kind === 'job' && l.jobId === allowedNow?.jobId) && Date.now() < end)
      await new Promise((r) => setTimeout(r, 100));
    expect((await auditLines(h)).find((l) => l.kind === 'job' && l.jobId === allowedNow?.jobId)?.result).toMatch(/^(completed|failed)/);
  });
});
