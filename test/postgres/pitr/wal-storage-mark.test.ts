import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../../src/config.ts';
import { type EphemeralPostgres, startEphemeralPostgres } from '../../../src/dev/ephemeral.ts';
import { readWalState, type StoredWalState } from '../../../src/jobs/wal-state.ts';
import { LocalWalStore } from '../../../src/postgres/pitr/wal-store.ts';
import { LocalStorage } from '../../../src/storage/local-storage.ts';
import { MARK_FILE } from '../../../src/storage/storage-mark.ts';
import { startWalArchives, type WalArchives } from '../../../src/workers/wal-archives.ts';
import { completeSegment, slotActive } from '../../support/pitr-archive.ts';
import { silentLog } from '../../support/postgres-helpers.ts';

/**
 * The WAL archive on a backup disk that stops being mounted (an empty directory left at its mount point). Before,
 * the worker's receiver made its spool there and archived onto the filesystem beneath, calling the stream healthy,
 * while the disk the bot reads from got a gap. Now the archive asks the storage mark (storage-mark.ts) as the backups
 * do: nothing is received or archived into a BACKUP_DIR that is not the bot's, the stream is down with the reason,
 * and once the disk is back the slot hands over what was written meanwhile: no segment is missing.
 */
describe('the WAL archive on a backup disk that is no longer mounted', () => {
  let source: EphemeralPostgres;
  let dir: string;
  let redis: Redis;
  let archives: WalArchives | undefined;
  const prefix = `{pgbbt${randomBytes(3).toString('hex')}}`;
  const disk = () => join(dir, 'disk');

  beforeAll(async () => {
    source = await startEphemeralPostgres();
    dir = await mkdtemp(join(tmpdir(), 'pgbb-walmark-'));
    await writeFile(
      join(dir, 'bot.yml'),
      'targets:\n  - name: app\n    urlEnv: APP_URL\n    environment: staging\n    pitr: { urlEnv: APP_URL, slot: pgbb_walmark }\n',
    );
    redis = new Redis(inject('redisUrl'));
  }, 60_000);

  afterAll(async () => {
    await archives?.stop();
    redis?.disconnect();
    await source?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const stateUntil = async (ok: (s: StoredWalState) => boolean, what: string): Promise<StoredWalState> => {
    const end = Date.now() + 60_000;
    for (;;) {
      const s = await readWalState(redis, prefix, 'app');
      if (s && ok(s)) return s;
      if (Date.now() > end) throw new Error(`never ${what}: ${JSON.stringify(s)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  it('receives and archives nothing there, says why, and misses no segment once the disk is back', async () => {
    const env = { BOT_CONFIG: join(dir, 'bot.yml'), APP_URL: source.url, BACKUP_DIR: disk(), REDIS_URL: inject('redisUrl'), QUEUE_PREFIX: prefix };
    const config = loadConfig(env, 'offline');
    archives = await startWalArchives({
      config,
      redis,
      log: silentLog,
      storage: new LocalStorage(disk()),
      guardEveryMs: 200,
      lease: { ttlMs: 3000, renewMs: 1000, retryMs: 500 },
    });
    await stateUntil((s) => s.receiver === 'up', 'streaming');
    // "Up" is said when pg_receivewal starts; a new slot reserves WAL from its first connection: a segment completed
    // before that is not the stream's (a CI run under load waited for it in vain).
    for (let i = 0; !(await slotActive(source.url, 'pgbb_walmark')); i++) {
      if (i > 600) throw new Error('the receiver never connected to its slot');
      await new Promise((r) => setTimeout(r, 100));
    }
    // The first worker to use the directory marked it as the bot's storage.
    expect(await readdir(disk())).toContain(MARK_FILE);
    const before = await completeSegment(source.url);
    await stateUntil((s) => (s.lastArchived ?? '') >= before, `archived ${before}`);

    // "Unmounted": the disk's directory moved away, an empty one left at its path.
    await rename(disk(), `${disk()}.mounted`);
    await mkdir(disk());
    const down = await stateUntil((s) => s.receiver === 'down' && /not the storage/.test(s.error ?? ''), 'down for the storage');
    // The receiver's refusal or the sweep's, whichever wrote last: both name the disk and the fix.
    expect(down.error).toMatch(
      /^not (streaming|archiving): BACKUP_DIR .* is not the storage the bot has written its backups to: its \.pg-backup-bot-storage is gone, so most likely the disk or share that holds them is not mounted/,
    );
    expect(down.error).toContain(`BACKUP_DIR ${disk()} `);
    const during = await completeSegment(source.url);
    await new Promise((r) => setTimeout(r, 1500));
    // Nothing made or written beneath the mount point: no spool, no archive, no mark of a new storage.
    expect(await readdir(disk())).toEqual([]);
    expect((await readWalState(redis, prefix, 'app'))?.receiver).toBe('down');

    // Mounted again: the receiver starts within its backoff, and the slot kept what was written meanwhile.
    await rm(disk(), { recursive: true });
    await rename(`${disk()}.mounted`, disk());
    const after = await completeSegment(source.url);
    await stateUntil((s) => s.receiver === 'up' && (s.lastArchived ?? '') >= after, `archived ${after}`);
    const stored = (await new LocalWalStore(disk(), 'app').list()).map((e) => e.name);
    expect(stored).toEqual(expect.arrayContaining([before, during, after]));
  }, 120_000);
});
