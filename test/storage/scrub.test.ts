import { mkdir, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { memoryScrubState, type ScrubReport, scrubBackups } from '../../src/storage/scrub.ts';
import { storeBackup } from '../fixtures/backups.ts';
import { silentLog } from '../support/postgres-helpers.ts';
import { tempRoot } from './fixtures.ts';

describe('the checksum scrub', () => {
  let t: Awaited<ReturnType<typeof tempRoot>>;
  beforeEach(async () => {
    t = await tempRoot();
  });
  afterEach(() => t.cleanup());

  it('reads a seventh of what is stored per run, longest unread first, so every backup is read once in seven runs', async () => {
    const ids: string[] = [];
    for (let day = 1; day <= 14; day++) {
      const d = String(day).padStart(2, '0');
      ids.push((await storeBackup(t.storage, 'app', `app-202601${d}T000000Z`, `2026-01-${d}T00:00:00Z`, 'x'.repeat(1000))).backupId);
    }
    const state = memoryScrubState();
    const runs: ScrubReport[] = [];
    const readIn: string[][] = [];
    for (let run = 0; run < 8; run++) {
      const before = new Map(state.seen);
      runs.push(await scrubBackups({ storage: t.storage, state, now: new Date(Date.UTC(2026, 1, 1 + run)), log: silentLog }));
      readIn.push([...state.seen].filter(([k, at]) => before.get(k) !== at).map(([k]) => k.slice(4)));
    }
    // 14 backups of 1000 bytes: 2000 bytes a run. Never scrubbed counts from when it was written: oldest first.
    expect(runs.map((r) => [r.verified.length, r.verifiedBytes, r.stored, r.storedBytes])).toEqual(Array(8).fill([2, 2000, 14, 14000]));
    expect(readIn.slice(0, 7)).toEqual([0, 2, 4, 6, 8, 10, 12].map((i) => [ids[i], ids[i + 1]]));
    // The eighth run starts the cycle again with the backups read longest ago.
    expect(readIn[7]).toEqual([ids[0], ids[1]]);
    // A backup that is gone is forgotten.
    await t.storage.deleteBackup('app', ids[5] as string);
    await scrubBackups({ storage: t.storage, state, now: new Date(Date.UTC(2026, 1, 10)), log: silentLog });
    expect([...state.seen.keys()]).not.toContain(`app/${ids[5]}`);
  });

  it('a backup it cannot read is said as unreadable, never marked damaged, costs the run nothing, and waits its turn', async () => {
    // A real fault on the disk: a directory where the artifact was, with the size the manifest records (an empty
    // directory's size on this file system), so the listing still counts it; reading it fails with EISDIR.
    await mkdir(join(t.root, 'probe'));
    const dirSize = (await stat(join(t.root, 'probe'))).size;
    await rm(join(t.root, 'probe'), { recursive: true });
    const good = await storeBackup(t.storage, 'app', 'app-20260102T000000Z', '2026-01-02T00:00:00Z', 'z'.repeat(dirSize));
    const broken = await storeBackup(t.storage, 'app', 'app-20260101T000000Z', '2026-01-01T00:00:00Z', 'x'.repeat(dirSize));
    const artifact = join(t.root, 'app', broken.backupId, 'database.pgdump.zst');
    await rm(artifact);
    await mkdir(artifact);
    expect((await t.storage.list('app')).map((m) => m.backupId)).toEqual([good.backupId, broken.backupId]);
    const state = memoryScrubState();
    const first = await scrubBackups({ storage: t.storage, state, now: new Date('2026-02-01T00:00:00Z'), log: silentLog });
    expect(first.unreadable).toEqual([
      { target: 'app', backupId: broken.backupId, why: `Reading database.pgdump.zst of backup ${broken.backupId} from local:${t.root} failed.` },
    ]);
    // An unreadable backup spends none of the run's budget: the run goes on to the next, here the good one.
    expect([first.damaged, first.verified]).toEqual([[], [good.backupId]]);
    expect(await readdir(join(t.root, 'app', broken.backupId))).not.toContain('damaged.json');
    expect((await t.storage.list('app')).map((m) => m.backupId)).toContain(broken.backupId);
    // Tried, so it waits its turn like one read whole, rather than being tried first again tomorrow.
    expect(state.seen.get(`app/${broken.backupId}`)).toBe(Date.parse('2026-02-01T00:00:00Z'));
  });

  it('reads at least one backup a run, however large', async () => {
    const big = await storeBackup(t.storage, 'app', 'app-20260101T000000Z', '2026-01-01T00:00:00Z', 'y'.repeat(10_000));
    const report = await scrubBackups({ storage: t.storage, state: memoryScrubState(), now: new Date('2026-01-02T00:00:00Z'), log: silentLog });
    expect(report).toMatchObject({ verified: [big.backupId], verifiedBytes: big.artifacts[0]?.bytes, damaged: [], unreadable: [] });
  });
});
