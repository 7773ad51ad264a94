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

  it('reads at least one backup a run, however large', async () => {
    const big = await storeBackup(t.storage, 'app', 'app-20260101T000000Z', '2026-01-01T00:00:00Z', 'y'.repeat(10_000));
    const report = await scrubBackups({ storage: t.storage, state: memoryScrubState(), now: new Date('2026-01-02T00:00:00Z'), log: silentLog });
    expect(report).toMatchObject({ verified: [big.backupId], verifiedBytes: big.artifacts[0]?.bytes, damaged: [], unreadable: [] });
  });
});
