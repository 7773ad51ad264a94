import { createHash } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';

/**
 * `npm run demo` with point-in-time recovery on and no setup: its throwaway cluster streams its WAL, a base backup
 * is taken at start, and `/restore-test pitr` at once restores a scratch cluster to the latest moment and passes.
 */
describe('the demo with point-in-time recovery', () => {
  it('runs /restore-test pitr at once, posts the verdict with each check, and leaves no scratch cluster', async () => {
    const before = new Set((await readdir(tmpdir())).filter((n) => n.startsWith('pgbb-pitr-test-')));
    const res = await execa('node', ['bin/pg-backup-bot.js', 'demo', '/restore-test pitr'], { reject: false, stdin: 'ignore', timeout: 240_000 });
    const out = res.stdout;
    expect(res.exitCode, `${out}\n${res.stderr}`).toBe(0);
    expect(out).toMatch(/Point-in-time recovery is on: WAL streams into \S+\/shop\/_wal, base backup shop-base-\d{8}T\d{6}Z taken, markers every 10 s/);
    expect(out).toMatch(/PITR restore test of \*?shop\*? to the latest moment queued: job `?pitr-test-shop-/);
    expect(out).toMatch(/PITR restore test of \*?shop\*? to the latest moment passed/);
    for (const check of ['WAL archive', 'base backup (pg_verifybackup)', 'recovery reached its target', 'pg_amcheck, every database'])
      expect(out).toContain(check);
    expect(out).toContain('scratch cluster removed');
    // The demo's own scratch cluster (its label holds the job id's hash), whatever other tests run beside it.
    const jobId = /job `?(pitr-test-shop-[0-9a-f-]+)/.exec(out)?.[1] ?? 'none';
    const label = createHash('sha256').update(jobId).digest('hex').slice(0, 12);
    expect((await readdir(tmpdir())).filter((n) => n.startsWith('pgbb-pitr-test-') && n.includes(`-${label}-`) && !before.has(n))).toEqual([]);
  }, 300_000);
});

describe('the demo interrupted during a PITR restore test', () => {
  it('a SIGINT while the scratch cluster recovers ends with exit 130 and no "Demo failed" (QA)', async () => {
    const child = execa('node', ['bin/pg-backup-bot.js', 'demo', '/restore-test pitr'], { reject: false, stdin: 'ignore', all: true, timeout: 240_000 });
    let out = '';
    let sent = false;
    child.all?.on('data', (d: Buffer) => {
      out += d.toString();
      // The restore test under way (its scratch cluster recovering or checked): the stop comes mid-test, once.
      if (!sent && /PITR restore test of \*?shop\*? to the latest moment (running|queued)/.test(out) && /restoring|replaying|recover/i.test(out)) {
        sent = true;
        child.kill('SIGINT');
      }
    });
    const res = await child;
    expect(out).toMatch(/SIGINT: cleaning up the throwaway servers and backups/);
    expect(out).not.toMatch(/Demo failed/);
    expect(res.exitCode).toBe(130);
  }, 300_000);
});
