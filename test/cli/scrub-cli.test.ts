import { randomUUID } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, inject, it } from 'vitest';
import type { LocalStorage, Manifest } from '../../src/storage/index.ts';
import { tempRoot } from '../storage/fixtures.ts';
import { store } from '../storage/retention-fixtures.ts';

const cli = (args: string[], env: Record<string, string>) =>
  execa('node', ['bin/pg-backup-bot.js', ...args], { env: { PATH: process.env.PATH ?? '', ...env }, extendEnv: false, reject: false });

describe('pg-backup-bot scrub', () => {
  let root: string;
  let storage: LocalStorage;
  let cleanup: () => Promise<void>;
  let good: Manifest;
  let rotted: Manifest;

  beforeEach(async () => {
    ({ root, storage, cleanup } = await tempRoot());
    const now = new Date();
    good = await store(storage, 'shop', now, 1, 30);
    rotted = await store(storage, 'shop', now, 2, 30);
    // One bit flipped, the size unchanged: `list` still shows it; only reading it back can tell.
    const file = join(root, 'shop', rotted.backupId, 'database.pgdump.zst');
    const bytes = await readFile(file);
    bytes[3] = (bytes[3] ?? 0) ^ 0x10;
    await writeFile(file, bytes);
  });
  afterEach(() => cleanup());

  it('--all reads every backup back, marks the damaged one, exits 1; `list` then shows it as damaged; a second run exits 0', async () => {
    const env = { BACKUP_DIR: root };
    expect((await cli(['list', 'shop'], env)).stdout).not.toMatch(/damaged/i);
    const run = await cli(['scrub', '--all'], env);
    expect(run.exitCode).toBe(1);
    expect(run.stdout.split('\n')).toEqual([
      expect.stringMatching(
        new RegExp(
          `^DAMAGED ${rotted.backupId}: the checksum scrub found artifact corrupted: database\\.pgdump\\.zst \\(sha256 [0-9a-f]{12}… expected, [0-9a-f]{12}… found\\)$`,
        ),
      ),
      `Read back 2 of 2 stored backups on local:${root} (${good.artifacts[0]?.bytes} B matching): 1 damaged, 0 unreadable.`,
    ]);
    const list = await cli(['list', 'shop'], env);
    expect(list.stdout).toContain(good.backupId);
    expect(list.stdout).toMatch(new RegExp(`${rotted.backupId}.*the checksum scrub found artifact corrupted`));
    const again = await cli(['scrub', '--all'], env);
    expect(again.stdout).toBe(`Read back 1 of 1 stored backups on local:${root} (${good.artifacts[0]?.bytes} B matching): 0 damaged, 0 unreadable.`);
    expect(again.exitCode).toBe(0);
  });

  it('without --all reads what the next daily run would, sharing the worker’s memory in Redis', async () => {
    const prefix = `{scrub-${randomUUID().slice(0, 8)}}`;
    const env = { BACKUP_DIR: root, REDIS_URL: inject('redisUrl'), QUEUE_PREFIX: prefix };
    // Two backups: a seventh of them is one, the one written longest ago first (the rotted one).
    const first = await cli(['scrub'], env);
    expect(first.stdout.split('\n')[0]).toMatch(new RegExp(`^DAMAGED ${rotted.backupId}: `));
    expect(first.exitCode).toBe(1);
    const second = await cli(['scrub'], env);
    expect(second.stdout).toMatch(/^Read back 1 of 1 stored backups .*: 0 damaged, 0 unreadable\.$/);
    const redis = new Redis(inject('redisUrl'));
    try {
      expect(Object.keys(await redis.hgetall(`${prefix}:scrub:verified`))).toEqual([`shop/${good.backupId}`]);
    } finally {
      redis.disconnect();
    }
  });

  it('refuses other arguments with its usage', async () => {
    const run = await cli(['scrub', '--everything'], { BACKUP_DIR: root });
    expect(run.exitCode).toBe(2);
    expect(run.stderr).toBe('usage: pg-backup-bot scrub [--all]');
  });
});
