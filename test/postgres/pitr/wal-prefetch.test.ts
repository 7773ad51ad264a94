import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findAgeEngine } from '../../../src/crypto/age-cli.ts';
import { AgeIdentity, generateKeyPair, loadIdentity } from '../../../src/crypto/age.ts';
import { archiveWalFile } from '../../../src/postgres/pitr/archiver.ts';
import { fetchWal } from '../../../src/postgres/pitr/pitr-restore.ts';
import { nextSegment, PREFETCH_DIR, runPrefetch } from '../../../src/postgres/pitr/wal-prefetch.ts';
import { LocalWalStore } from '../../../src/postgres/pitr/wal-store.ts';

const SEGMENTS = ['000000010000000000000001', '000000010000000000000002', '000000010000000000000003', '000000010000000000000004', '000000010000000000000005'];
const bin = join(import.meta.dirname, '../../../bin/pg-backup-bot.js');

/**
 * WAL read ahead of recovery: the prefetcher fetches the next segments with the same checks as wal-fetch, keeps
 * only `depth` ready, notices what recovery took, and removes its directory once recovery stops asking; the bin's
 * fast path hands a ready segment over by a rename; a segment that fails its checks is never handed over.
 */
describe('WAL prefetch', () => {
  let dir: string;
  let store: LocalWalStore;
  let identityFile: string;
  let secretKey: string;
  const raw = new Map<string, Buffer>();

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pgbb-prefetch-'));
    const keys = await generateKeyPair();
    identityFile = join(dir, 'key.txt');
    secretKey = keys.identityFileText.split('\n').find((l) => l.startsWith('AGE-SECRET-KEY-')) as string;
    await writeFile(identityFile, keys.identityFileText, { mode: 0o600 });
    store = new LocalWalStore(join(dir, 'backups'), 'app');
    const ageEngine = await findAgeEngine();
    for (const name of SEGMENTS) {
      // 16 MB like a real segment: a random head, the rest zeros (a segment switched early looks so).
      const bytes = Buffer.concat([randomBytes(256 * 1024), Buffer.alloc(16 * 1024 * 1024 - 256 * 1024)]);
      raw.set(name, bytes);
      const file = join(dir, name);
      await writeFile(file, bytes);
      await archiveWalFile(file, name, { store, zstd: 'zstd', level: 1, recipients: [keys.recipient], ageEngine });
    }
  }, 60_000);

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('fetches a segment whole through the age CLI and through the library alike, and names a key that does not match', async () => {
    expect((await findAgeEngine()).kind).toBe('cli');
    const name = SEGMENTS[1] as string;
    const out = join(dir, 'fetched');
    await mkdir(out, { recursive: true });
    // From a file: the age CLI decrypts. Held in memory only (no file for the CLI's -i): the library does.
    expect(await fetchWal(store, name, join(out, 'by-cli'), await loadIdentity(identityFile, 'test'))).toBe(true);
    expect(await fetchWal(store, name, join(out, 'by-library'), new AgeIdentity([secretKey], 'in memory'))).toBe(true);
    expect((await readFile(join(out, 'by-cli'))).equals(raw.get(name) as Buffer)).toBe(true);
    expect((await readFile(join(out, 'by-library'))).equals(raw.get(name) as Buffer)).toBe(true);
    const other = join(dir, 'other-key.txt');
    await writeFile(other, (await generateKeyPair()).identityFileText, { mode: 0o600 });
    await expect(fetchWal(store, name, join(out, 'wrong'), await loadIdentity(other, 'test'))).rejects.toThrow(
      `WAL ${name} is encrypted for another key: BACKUP_ENCRYPTION_IDENTITY_FILE (${other}) does not match any of its recipients.`,
    );
    // Nothing half-written is left under the name recovery would read, nor beside it.
    expect(existsSync(join(out, 'wrong'))).toBe(false);
    expect(existsSync(join(out, 'wrong.pgbb'))).toBe(false);
  });

  it('keeps the next segments ready, checked, follows recovery, and leaves no directory behind', async () => {
    const pgWal = join(dir, 'data1', 'pg_wal');
    await mkdir(pgWal, { recursive: true });
    const ahead = join(pgWal, PREFETCH_DIR);
    const identity = await loadIdentity(identityFile, 'test');
    const running = runPrefetch({ store, identity, dir: ahead, after: SEGMENTS[0] as string, depth: 2, idleMs: 1500, pollMs: 20 });
    // Recovery as the fast path does it: each segment taken by a rename, in order, as soon as it is there.
    for (const name of SEGMENTS.slice(1)) {
      const ready = join(ahead, name);
      for (let i = 0; i < 1500 && !existsSync(ready); i++) await new Promise((r) => setTimeout(r, 20));
      // Never more than `depth` segments ahead of what recovery took.
      const waiting = (await import('node:fs/promises').then((fs) => fs.readdir(ahead))).filter((n) => /^[0-9A-F]{24}$/.test(n));
      expect(waiting.length).toBeLessThanOrEqual(2);
      await rename(ready, join(pgWal, 'RECOVERYXLOG'));
      expect((await readFile(join(pgWal, 'RECOVERYXLOG'))).equals(raw.get(name) as Buffer)).toBe(true);
    }
    expect(await running).toEqual({ fetched: 4 });
    expect(existsSync(ahead)).toBe(false);
  }, 60_000);

  it('hands a ready segment over through the bin before loading the bot, and never one that failed its checks', async () => {
    const pgWal = join(dir, 'data2', 'pg_wal');
    const ahead = join(pgWal, PREFETCH_DIR);
    await mkdir(ahead, { recursive: true });
    // The stored copy of segment 3 is damaged: the prefetcher must stop short of it.
    const damaged = join(store.dir, store.fileName(SEGMENTS[2] as string, true));
    const good = await readFile(damaged);
    // One byte flipped, never set to a value it may already hold (byte 100 lies in age's base64 header).
    await writeFile(damaged, Buffer.concat([good.subarray(0, 100), Buffer.from([(good[100] as number) ^ 0xff]), good.subarray(101)]));
    try {
      const identity = await loadIdentity(identityFile, 'test');
      const fetched = runPrefetch({ store, identity, dir: ahead, after: SEGMENTS[0] as string, depth: 3, idleMs: 800, pollMs: 20 });
      for (let i = 0; i < 1500 && !existsSync(join(ahead, SEGMENTS[1] as string)); i++) await new Promise((r) => setTimeout(r, 20));
      await new Promise((r) => setTimeout(r, 300));
      expect(existsSync(join(ahead, SEGMENTS[2] as string))).toBe(false);
      // The bin's fast path (as restore-pitr's restore_command calls it, with its hold's token): no config, no key, no
      // BACKUP_DIR needed for a segment already checked.
      const dest = join(pgWal, 'RECOVERYXLOG');
      const fast = await execa(process.execPath, [bin, 'wal-fetch', 'app', SEGMENTS[1] as string, dest, '--reader=restore-pitr-token'], {
        env: { PATH: process.env.PATH ?? '' },
        extendEnv: false,
      });
      expect(fast.exitCode).toBe(0);
      expect((await readFile(dest)).equals(raw.get(SEGMENTS[1] as string) as Buffer)).toBe(true);
      // The damaged one goes the full way, which checks it and says why it fails.
      const slow = await execa(process.execPath, [bin, 'wal-fetch', 'app', SEGMENTS[2] as string, dest], {
        env: { PATH: process.env.PATH ?? '', BACKUP_DIR: join(dir, 'backups'), BACKUP_ENCRYPTION_IDENTITY_FILE: identityFile },
        extendEnv: false,
        reject: false,
      });
      // Set aside already (by the prefetcher, below): a gap the window ends at, answered as not archived (exit 1); a
      // file that cannot be served when recovery asks for it stops recovery (exit 126: partial-archiver.test.ts).
      expect(slow.exitCode).toBe(1);
      // The prefetcher met it first: read three times alike, it moved it aside as the scrub does, so the window and
      // health see the gap now (QA: a PITR test failed on a damaged segment while the window still claimed it).
      expect(slow.stderr).toMatch(/is indexed as archived, but its stored file is gone \(or was set aside as damaged, by the checksum scrub or a fetch/);
      // It handed over segment 2 alone: segment 3 failed its checks on every try.
      expect(await fetched).toEqual({ fetched: 1 });
      expect(existsSync(damaged)).toBe(false);
      expect(existsSync(`${damaged}.damaged`)).toBe(true);
    } finally {
      await rm(`${damaged}.damaged`, { force: true });
      await writeFile(damaged, good);
    }
    expect(nextSegment('0000000100000001000000FF')).toBe('000000010000000200000000');
  }, 60_000);

  it('leaves as soon as recovery is over, not a minute later, and starts nothing for a server that has stopped', async () => {
    // A data directory as a recovering server has it: postmaster.pid, recovery.signal. The prefetcher runs as
    // wal-fetch starts it, through the bin, with the idle limit of production (60 s).
    const data = join(dir, 'data3');
    const ahead = join(data, 'pg_wal', PREFETCH_DIR);
    await mkdir(join(data, 'pg_wal'), { recursive: true });
    await writeFile(join(data, 'postmaster.pid'), `${process.pid}\n`);
    await writeFile(join(data, 'recovery.signal'), '');
    const env = { PATH: process.env.PATH ?? '', BACKUP_DIR: join(dir, 'backups'), BACKUP_ENCRYPTION_IDENTITY_FILE: identityFile };
    const prefetch = () => execa(process.execPath, [bin, 'wal-prefetch', 'app', SEGMENTS[0] as string, ahead], { env, extendEnv: false, reject: false });
    const running = prefetch();
    for (let i = 0; i < 1500 && !existsSync(join(ahead, SEGMENTS[1] as string)); i++) await new Promise((r) => setTimeout(r, 20));
    expect(existsSync(join(ahead, SEGMENTS[1] as string))).toBe(true);
    // PostgreSQL removes recovery.signal at the end of recovery, after its last restore_command.
    await rm(join(data, 'recovery.signal'));
    const left = await running;
    expect(left.exitCode, left.stderr).toBe(0);
    expect(existsSync(ahead)).toBe(false);
    // The server stopped while still in recovery (no postmaster.pid): nothing is read ahead, no directory made.
    await writeFile(join(data, 'recovery.signal'), '');
    await rm(join(data, 'postmaster.pid'));
    const none = await prefetch();
    expect(none.exitCode, none.stderr).toBe(0);
    expect(existsSync(ahead)).toBe(false);
  }, 30_000);

  it('the full wal-fetch reads BACKUP_DIR and the key only: a config the server cannot read, or a bad variable, does not fail recovery', async () => {
    // The recovering server runs restore_command with its own environment, which may hold the bot's other variables
    // (a BOT_CONFIG the server's user may not read, a DATABASE_URL of the server that is gone): none of them is read.
    const pgWal = join(dir, 'other-cluster', 'pg_wal');
    await mkdir(pgWal, { recursive: true });
    const dest = join(pgWal, 'RECOVERYXLOG');
    const r = await execa(process.execPath, [bin, 'wal-fetch', 'app', SEGMENTS[4] as string, dest], {
      env: {
        PATH: process.env.PATH ?? '',
        BACKUP_DIR: join(dir, 'backups'),
        BACKUP_ENCRYPTION_IDENTITY_FILE: identityFile,
        BOT_CONFIG: join(dir, 'no-such-config.yml'),
        DATABASE_URL: 'not a url',
        PGBB_WAL_PREFETCH: '0',
      },
      extendEnv: false,
      reject: false,
    });
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    expect((await readFile(dest)).equals(raw.get(SEGMENTS[4] as string) as Buffer)).toBe(true);
  });
});
