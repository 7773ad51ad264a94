import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalStorage } from '../../src/storage/local-storage.ts';
import { storeBackup } from '../fixtures/backups.ts';

const cli = (args: string[], env: Record<string, string>) =>
  execa('node', ['bin/pg-backup-bot.js', ...args], { env: { PATH: process.env.PATH ?? '', ...env }, extendEnv: false, reject: false });

/**
 * `check` of every target: the backup disk they share is one line, judged for all of them (as the workers page it,
 * once per storage), not one CRITICAL line per target; `check <target>` keeps that target's own line.
 */
describe('check: the shared backup disk', () => {
  let dir: string;
  let env: Record<string, string>;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pgbb-check-disk-'));
    const storage = new LocalStorage(join(dir, 'backups'));
    const at = new Date(Date.now() - 3600_000);
    const id = (t: string) => `${t}-${at.toISOString().replace(/[-:]/g, '').replace(/\.\d+/, '')}`;
    for (const t of ['billing', 'shop', 'crm']) await storeBackup(storage, t, id(t), at.toISOString());
    const targets = ['billing', 'shop', 'crm'].map((t) => `  - name: ${t}\n    url: postgres://backup@127.0.0.1:1/${t}\n    environment: staging\n`).join('');
    // Every disk has less than 100 % free: the disk condition fails here whatever this machine's disk holds.
    await writeFile(join(dir, 'bot.yml'), `targets:\n${targets}health:\n  diskFreeMinPercent: 100\nencryption: none\n`);
    env = { BOT_CONFIG: join(dir, 'bot.yml'), BACKUP_DIR: join(dir, 'backups') };
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('is one line for every target, naming the storage; one target alone keeps its own', async () => {
    const all = await cli(['check'], env);
    const disk = all.stdout.split('\n').filter((l) => / disk: /.test(l));
    expect(disk, all.stdout + all.stderr).toEqual([
      expect.stringMatching(new RegExp(`^WARNING local:${join(dir, 'backups')} disk: \\d+ % free .*; 3 targets write to it; to clear it: free space`)),
    ]);
    expect(all.stdout).not.toMatch(/^\w+ (billing|shop|crm) disk:/m);
    expect(all.exitCode).toBe(1);

    const one = await cli(['check', 'shop'], env);
    expect(one.stdout).toMatch(/^WARNING shop disk: /m);
    expect(one.stdout).not.toContain(`local:${join(dir, 'backups')} disk`);
  }, 60_000);
});
