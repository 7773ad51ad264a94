import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { archiveWalFile } from '../../../src/postgres/pitr/archiver.ts';
import { chooseRecovery, fetchWal } from '../../../src/postgres/pitr/pitr-restore.ts';
import { planPitrTest } from '../../../src/postgres/pitr/pitr-test.ts';
import { planPitrRetention } from '../../../src/postgres/pitr/pitr-retention-plan.ts';
import { pitrArchiveOps } from '../../../src/postgres/pitr/pitr-retention-ops.ts';
import { scrubPitrArchives } from '../../../src/postgres/pitr/pitr-scrub.ts';
import { archivedBases, archivedWal, lostWal, setAsideBases, setAsideWal } from '../../../src/postgres/pitr/wal-index.ts';
import { LocalWalStore } from '../../../src/postgres/pitr/wal-store.ts';
import { memoryScrubState } from '../../../src/storage/scrub.ts';
import { baseBackupCondition } from '../../../src/health/base-backup-condition.ts';
import { pitrSources, readArchiveFacts } from '../../../src/health/index.ts';
import type { BaseBackupHealth } from '../../../src/health/types.ts';
import { windowSentence } from '../../../src/health/wal-conditions.ts';
import { windowText } from '../../../src/commands/wal-status.ts';
import { configWith, shop } from '../../support/checklist-kit.ts';
import { silentLog } from '../../support/postgres-helpers.ts';

const SEGMENTS = Array.from({ length: 6 }, (_, i) => `0000000100000000000000${(i + 1).toString(16).toUpperCase().padStart(2, '0')}`);
const BASE = 'shop-base-20261205T020000Z';

/** Flips one byte in the middle of a file: the same size, other content (bit rot a listing cannot see). */
async function rot(path: string): Promise<void> {
  const bytes = await readFile(path);
  bytes[bytes.length >> 1] = (bytes[bytes.length >> 1] ?? 0) ^ 0xff;
  await writeFile(path, bytes);
}

/**
 * The checksum scrub of the point-in-time archive (pitr-scrub.ts): WAL files and base backups read back against
 * their records, a seventh of the bytes a run, longest unread first; what three reads agree is damaged is moved
 * aside, so the window, health and wal-fetch see it as missing, and retention deletes a set-aside WAL file with
 * its entry.
 */
describe('the point-in-time archive scrub', () => {
  let root: string;
  let store: LocalWalStore;

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'pgbb-pitr-scrub-'));
    store = new LocalWalStore(root, 'shop');
    for (const [i, name] of SEGMENTS.entries()) {
      const file = join(root, name);
      await writeFile(file, Buffer.concat([randomBytes(64 * 1024), Buffer.alloc(1024 * 1024)]));
      const e = await archiveWalFile(file, name, { store, zstd: 'zstd', level: 1, recipients: [], ageEngine: undefined });
      // Archived a minute apart, oldest first: the order a scrub that never ran reads them in.
      const json = join(store.dir, `${name}.json`);
      await writeFile(json, JSON.stringify({ ...e, archivedAt: new Date(Date.UTC(2026, 11, 5, 3, i)).toISOString() }));
    }
    // A base backup as runBaseBackup leaves one: its file, then base.json.
    const dir = join(root, 'shop', '_base', BASE);
    await mkdir(dir, { recursive: true });
    const tar = randomBytes(512 * 1024);
    await writeFile(join(dir, 'base.tar.zst'), tar);
    const record = {
      id: BASE,
      target: 'shop',
      file: 'base.tar.zst',
      bytes: tar.length,
      rawBytes: tar.length,
      sha256: createHash('sha256').update(tar).digest('hex'),
      encryption: 'none',
      startedAt: '2026-12-05T02:00:00.000Z',
      finishedAt: '2026-12-05T02:01:00.000Z',
      startLsn: '0/1000028',
      endLsn: '0/1000100',
      timeline: 1,
      pgBasebackupVersion: 'pg_basebackup (PostgreSQL) 15.20',
    };
    await writeFile(join(dir, 'base.json'), JSON.stringify(record));
  });

  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('reads a seventh of the archive a run, longest unread first, and all of it within a week of runs', async () => {
    const state = memoryScrubState();
    const reads: number[] = [];
    const firstRead = new Map<string, number>();
    for (let day = 0; day < 7; day++) {
      const r = await scrubPitrArchives({ root, targets: ['shop'], state, now: new Date(Date.UTC(2026, 11, 6 + day)), log: silentLog });
      expect(r.damaged).toEqual([]);
      expect(r.unreadable).toEqual([]);
      expect(r.stored).toBe(SEGMENTS.length + 1);
      reads.push(r.verified);
      for (const [k, at] of state.seen) if (!firstRead.has(k)) firstRead.set(k, at);
    }
    // Never the whole archive in one run, and every file read by the end of the week.
    expect(Math.max(...reads)).toBeLessThan(SEGMENTS.length + 1);
    expect(firstRead.size).toBe(SEGMENTS.length + 1);
    // The base backup (the oldest record) on the first day, alone (it is over a seventh); the WAL in archiving order after.
    expect(reads[0]).toBe(1);
    expect(firstRead.get(`shop/base/${BASE}`)).toBe(Date.UTC(2026, 11, 6));
    const walOrder = SEGMENTS.map((n) => firstRead.get(`shop/wal/${n}`) as number);
    expect(walOrder).toEqual([...walOrder].sort((a, b) => a - b));
    expect(walOrder[0]).toBeGreaterThan(Date.UTC(2026, 11, 6));
  });

  it('moves a rotted WAL file aside: a gap, not lost; named damaged; retention deletes it with its entry', async () => {
    const name = SEGMENTS[3] as string;
    const entry = (await store.list()).find((e) => e.name === name);
    const path = join(store.dir, entry?.file as string);
    await rot(path);
    const r = await scrubPitrArchives({ root, targets: ['shop'], state: memoryScrubState(), now: new Date(), log: silentLog, all: true });
    expect(r.verified).toBe(SEGMENTS.length);
    expect(r.damaged).toHaveLength(1);
    expect(r.damaged[0]?.what).toBe(`WAL ${name}`);
    expect(r.damaged[0]?.why).toMatch(
      new RegExp(
        `^the checksum scrub found its stored file does not match its sha256 \\(read [0-9a-f]{12}…, recorded ${entry?.sha256.slice(0, 12)}…\\), three reads alike; moved aside as ${path}\\.damaged$`,
      ),
    );
    expect(existsSync(path)).toBe(false);
    expect(existsSync(`${path}.damaged`)).toBe(true);
    // The window's listing no longer has it; health names it set aside, not lost.
    expect((await archivedWal(store)).map((e) => e.name)).not.toContain(name);
    expect(setAsideWal(store)).toEqual([name]);
    expect(lostWal(store)).toEqual([]);
    // The next run reads nothing of it and still says it (exit 1 in the CLI), not an all-clear.
    const again = await scrubPitrArchives({ root, targets: ['shop'], state: memoryScrubState(), now: new Date(), log: silentLog, all: true });
    expect(again.damaged).toEqual([]);
    expect(again.alreadyDamaged).toEqual([
      { target: 'shop', what: `WAL ${name}`, why: 'set aside as damaged (.damaged): the recoverable window has a gap there' },
    ]);
    // wal-fetch says the gap in a sentence (it died of an unhandled stream error before).
    await expect(fetchWal(store, name, join(root, 'fetched-wal'), undefined)).rejects.toThrow(
      `WAL ${name} is indexed as archived, but its stored file is gone (or was set aside as damaged, by the checksum scrub or a fetch that read it three times alike): the archive has a gap here.`,
    );
    // Retention's report sees the gap (its listing still holds the entry, to delete it in time).
    const ops = pitrArchiveOps({ root, target: 'shop', dryRun: false, log: silentLog, onCopyFailure: () => undefined });
    const listed = await ops.list();
    expect([...(listed.unusable ?? [])]).toEqual([name]);
    const plan = planPitrRetention({ target: 'shop', ...listed, now: new Date(), retentionDays: 7, reserved: new Set() });
    expect(plan.before?.gap).toBe(name);
    expect(plan.before?.reachesNewest).toBe(false);
    // Retention: the entry, the file (gone) and the set-aside copy all go.
    await ops.deleteWal(entry as NonNullable<typeof entry>);
    expect(existsSync(`${path}.damaged`)).toBe(false);
    expect(existsSync(join(store.dir, `${name}.json`))).toBe(false);
  });

  it('moves a rotted base backup’s record aside: no longer a base backup, named set aside', async () => {
    const dir = join(root, 'shop', '_base', BASE);
    await rot(join(dir, 'base.tar.zst'));
    const r = await scrubPitrArchives({ root, targets: ['shop'], state: memoryScrubState(), now: new Date(), log: silentLog, all: true });
    expect(r.damaged.map((d) => d.what)).toEqual([`base backup ${BASE}`]);
    expect(r.damaged[0]?.why).toContain(`three reads alike; moved aside as ${join(dir, 'base.json')}.damaged`);
    expect(await archivedBases(root, 'shop')).toEqual([]);
    expect(await setAsideBases(root, 'shop')).toEqual([BASE]);
    // Its bytes stay for a look.
    expect(existsSync(join(dir, 'base.tar.zst'))).toBe(true);
    // Health, /backup health and /backup list say the only base backup was found damaged, not "none yet".
    const config = { ...configWith([{ ...shop, pitr: { url: shop.url, slot: 'pgbb_shop', walRetentionDays: 7, rpoSeconds: 3600 } }]), backupDir: root };
    const bases = (await pitrSources(config).baseBackups?.('shop')) as BaseBackupHealth;
    expect(bases.setAside).toEqual([BASE]);
    const condition = baseBackupCondition('shop', new Date(), { ...bases, lastRun: null, watchedSince: new Date() });
    expect(condition).toMatchObject({ status: 'failing', summary: 'shop has no good base backup: point-in-time recovery has nothing to start from' });
    expect(condition.quiet).toBeUndefined();
    expect(condition.evidence).toContain(`${BASE} was set aside as damaged by the checksum scrub`);
    const facts = await readArchiveFacts(config, 'shop');
    expect(windowSentence('shop', facts)).toBe(
      `nothing recoverable: no good base backup (${BASE} was set aside as damaged by the checksum scrub; take one: \`pg-backup-bot base-backup shop\`)`,
    );
    expect(windowText(config, 'shop', facts)).toBe(windowSentence('shop', facts));
    // restore-pitr and the PITR restore test refuse saying the same.
    await expect(planPitrTest(root, 'shop', 'latest')).rejects.toThrow(
      `shop has no good base backup (${BASE} was set aside as damaged by the checksum scrub): take one with \`pg-backup-bot base-backup shop\`, then test.`,
    );
    expect(() => chooseRecovery([], [], new Date(), [BASE])).toThrow(`There is no good base backup: ${BASE} was set aside as damaged by the checksum scrub`);
  });

  it('calls a WAL file of another size damaged too, saying the sizes', async () => {
    const name = SEGMENTS[5] as string;
    const entry = (await store.list()).find((e) => e.name === name);
    const path = join(store.dir, entry?.file as string);
    await writeFile(path, (await readFile(path)).subarray(0, 100));
    const r = await scrubPitrArchives({ root, targets: ['shop'], state: memoryScrubState(), now: new Date(), log: silentLog, all: true });
    expect(r.damaged.map((d) => d.what)).toEqual([`WAL ${name}`]);
    expect(r.damaged[0]?.why).toContain(`found its stored file is 100 bytes, its record says ${entry?.bytes}, three reads alike`);
  });

  it('a fetch that finds a rotted WAL file sets it aside as the scrub would, so the window stops claiming it at once', async () => {
    const name = SEGMENTS[4] as string;
    const entry = (await store.list()).find((e) => e.name === name);
    const path = join(store.dir, entry?.file as string);
    await rot(path);
    await expect(fetchWal(store, name, join(root, 'fetched-rotted'), undefined)).rejects.toThrow(
      `WAL ${name} does not match its sha256: the stored file is damaged. Read three times alike, it was moved aside as ${path}.damaged: the recoverable window ends before it`,
    );
    expect(existsSync(`${path}.damaged`)).toBe(true);
    expect((await archivedWal(store)).map((e) => e.name)).not.toContain(name);
    expect(setAsideWal(store)).toContain(name);
  });
});
