import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { archiveWalFile } from '../../../src/postgres/pitr/archiver.ts';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ABORT_RECOVERY, cliWalFetch } from '../../../src/cli/wal-fetch-cli.ts';
import { segmentStartLsn } from '../../../src/postgres/pitr/lsn.ts';
import { receiving, snapshotPartial } from '../../../src/postgres/pitr/partial-archiver.ts';
import { PartialWalStore, recoverableWal } from '../../../src/postgres/pitr/partial-store.ts';
import { fetchWal } from '../../../src/postgres/pitr/pitr-restore.ts';
import { LocalWalStore } from '../../../src/postgres/pitr/wal-store.ts';

const SEG = '000000010000000000000007';
const MB16 = 16 * 1024 * 1024;

/**
 * A partial snapshot of a segment file laid out as pg_receivewal leaves it (16 MB, written pages then zeros), for a
 * target that opted out of encryption: only the bytes the server says were flushed are stored, the rest zeroed;
 * a claim beyond what the file holds is refused; wal-fetch serves it whole under the segment's name.
 */
describe('snapshotPartial', () => {
  let dir: string;
  let file: Buffer;
  const o = () => ({
    store: new LocalWalStore(join(dir, 'b'), 'app'),
    partials: new PartialWalStore(join(dir, 'b'), 'app'),
    zstd: 'zstd',
    level: 2,
    recipients: [],
    ageEngine: undefined,
  });

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pgbb-partial-unit-'));
    // Three written 8 kB pages (a page's magic first, then bytes), the rest as pg_receivewal pre-pads it.
    file = Buffer.alloc(MB16);
    for (let p = 0; p < 3; p++) {
      file.writeUInt16LE(0xd110, p * 8192);
      file.fill(0x41 + p, p * 8192 + 24, (p + 1) * 8192);
    }
    await writeFile(join(dir, `${SEG}.partial`), file);
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('stores the flushed bytes and zeros, indexed, and wal-fetch serves them as the segment', async () => {
    const flushed = segmentStartLsn(SEG) + 20_000n;
    const entry = await snapshotPartial(join(dir, `${SEG}.partial`), SEG, flushed, new Date('2026-12-04T12:00:00Z'), o());
    expect(entry).toMatchObject({ name: SEG, walBytes: 20_000, walEnd: '0/7004E20', encryption: 'none', rawBytes: MB16, coversAt: '2026-12-04T12:00:00.000Z' });
    const dest = join(dir, 'fetched');
    expect(await fetchWal(o().partials, SEG, dest, undefined)).toBe(true);
    const got = await readFile(dest);
    expect(got.length).toBe(MB16);
    expect(got.subarray(0, 20_000).equals(file.subarray(0, 20_000))).toBe(true);
    // Bytes past the flushed position (being written at that moment) are never stored.
    expect(got.subarray(20_000).every((b) => b === 0)).toBe(true);
    // The window reaches it through recoverableWal, at the time the server reported the flush.
    expect((await recoverableWal(join(dir, 'b'), 'app')).map((e) => [e.name, e.archivedAt])).toEqual([[SEG, '2026-12-04T12:00:00.000Z']]);
  });

  it('wal-fetch says why it cannot serve a snapshot, and answers "not archived" where no older timeline could stand in for it (QA)', async () => {
    // QA: a new timeline's snapshot that could not be read answered exit 1, which PostgreSQL takes as "not
    // archived": it took the old timeline's segment of that number, replayed past the fork and promoted.
    const name = '000000020000000000000009';
    await writeFile(join(dir, `${name}.partial`), file);
    await snapshotPartial(join(dir, `${name}.partial`), name, segmentStartLsn(name) + 20_000n, new Date('2026-12-04T12:05:00Z'), o());
    const entry = await o().partials.entry(name);
    if (!entry) throw new Error('not stored');
    const stored = join(o().partials.dir, entry.file);
    const bytes = await readFile(stored);
    bytes[bytes.length >> 1] = (bytes[bytes.length >> 1] ?? 0) ^ 0xff;
    await writeFile(stored, bytes);
    const said: string[] = [];
    const deps = { backupDir: join(dir, 'b'), identityFile: undefined, io: { out: () => undefined, err: (l: string) => said.push(l) } };
    // No older timeline holds segment 9: recovery stops here, and PostgreSQL refuses to end short of its target.
    expect(await cliWalFetch(['app', name, join(dir, 'RECOVERYXLOG')], deps)).toBe(1);
    expect(said.join('\n')).toMatch(new RegExp(`^wal-fetch of ${name} FAILED: .*sha256.* \\(answered as not archived: no older timeline holds it`));
    // Timeline 1 holds a segment 9 (the old primary's): exit 1 would make recovery take it. 126 stops recovery.
    await writeFile(join(dir, '000000010000000000000009'), file);
    await archiveWalFile(join(dir, '000000010000000000000009'), '000000010000000000000009', {
      store: o().store,
      zstd: 'zstd',
      level: 1,
      recipients: [],
      ageEngine: undefined,
    });
    said.length = 0;
    expect(await cliWalFetch(['app', name, join(dir, 'RECOVERYXLOG')], deps)).toBe(ABORT_RECOVERY);
    expect(ABORT_RECOVERY).toBeGreaterThan(125);
    expect(said.join('\n')).toMatch(
      new RegExp(`^wal-fetch of ${name} FAILED, recovery stops here \\(exit 126: an older timeline holds a segment of that number`),
    );
    // Not archived at all: 1, and recovery goes on (it asks for files until there is none).
    expect(await cliWalFetch(['app', '00000002000000000000000A', join(dir, 'RECOVERYXLOG')], deps)).toBe(1);
    expect(await cliWalFetch(['app', '00000003.history', join(dir, 'RECOVERYHISTORY')], deps)).toBe(1);
    // An index entry that cannot be read says why.
    await writeFile(join(o().partials.dir, '00000002000000000000000B.json'), '{ not json');
    said.length = 0;
    expect(await cliWalFetch(['app', '00000002000000000000000B', join(dir, 'RECOVERYXLOG')], deps)).toBe(1);
    expect(said.join('\n')).toContain(
      `The index entry of the partial WAL snapshot 00000002000000000000000B in local:${o().partials.dir} is unreadable (not the JSON the bot writes).`,
    );
    // A restore_command written wrong stops recovery too, instead of promoting what the base backup holds.
    expect(await cliWalFetch(['app'], deps)).toBe(ABORT_RECOVERY);
  });

  it('a new timeline’s segment set aside answers "not archived" only when no older timeline holds that number (second reader)', async () => {
    const store = o().store;
    const archive = async (seg: string) => {
      await writeFile(join(dir, seg), file);
      return archiveWalFile(join(dir, seg), seg, { store, zstd: 'zstd', level: 1, recipients: [], ageEngine: undefined });
    };
    // The switch segment on both timelines (the old primary's and the promoted one's), and a later one on the new only.
    await archive('000000010000000000000011');
    const fork = await archive('000000020000000000000011');
    const later = await archive('000000020000000000000012');
    for (const e of [fork, later]) await rm(join(store.dir, e.file));
    const said: string[] = [];
    const deps = { backupDir: join(dir, 'b'), identityFile: undefined, io: { out: () => undefined, err: (l: string) => said.push(l) } };
    // Exit 1 here would make PostgreSQL take timeline 1's segment 11: the old primary's writes past the fork.
    expect(await cliWalFetch(['app', '000000020000000000000011', join(dir, 'RECOVERYXLOG')], deps)).toBe(ABORT_RECOVERY);
    expect(said.join('\n')).toMatch(
      /^wal-fetch of 000000020000000000000011 FAILED, recovery stops here \(exit 126: an older timeline holds a segment of that number, which recovery would take instead\): WAL 000000020000000000000011 is indexed as archived, but its stored file is gone/,
    );
    // No older timeline holds 12: a gap the window ends at, answered as not archived.
    expect(await cliWalFetch(['app', '000000020000000000000012', join(dir, 'RECOVERYXLOG')], deps)).toBe(1);
  });

  it('a whole segment archived supersedes the snapshots of its timeline only: an older timeline’s last WAL is kept (QA)', async () => {
    const store = new PartialWalStore(join(dir, 'tl'), 'app');
    const at = new Date('2026-12-04T12:00:00Z');
    for (const seg of ['000000010000000000000012', '000000020000000000000013']) {
      await writeFile(join(dir, `${seg}.partial`), file);
      await snapshotPartial(join(dir, `${seg}.partial`), seg, segmentStartLsn(seg) + 20_000n, at, { ...o(), partials: store });
    }
    // Timeline 2's segment …12 (the switch copied timeline 1's WAL into it): compared as text, it removed timeline 1's snapshot.
    const whole = async () => true;
    await store.removeSupersededBy('000000020000000000000012', whole);
    expect((await store.list()).map((p) => p.name)).toEqual(['000000010000000000000012', '000000020000000000000013']);
    await store.removeSupersededBy('000000020000000000000013', whole);
    expect((await store.list()).map((p) => p.name)).toEqual(['000000010000000000000012']);
    await store.removeSupersededBy('000000010000000000000012', whole);
    expect(await store.list()).toEqual([]);
  });

  it('a segment archived after a gap leaves the snapshot before the gap: the only copy of that WAL (QA)', async () => {
    const store = new PartialWalStore(join(dir, 'gap'), 'app');
    const at = new Date('2026-12-04T12:00:00Z');
    for (const seg of ['000000010000000000000003', '000000010000000000000004']) {
      await writeFile(join(dir, `${seg}.partial`), file);
      await snapshotPartial(join(dir, `${seg}.partial`), seg, segmentStartLsn(seg) + 20_000n, at, { ...o(), partials: store });
    }
    // A dropped slot: …03 and …09 never arrive whole; …0A is archived. …04 was archived whole before the drop.
    const archived = new Set(['000000010000000000000004', '00000001000000000000000A']);
    await store.removeSupersededBy('00000001000000000000000A', async (n) => archived.has(n));
    expect((await store.list()).map((p) => p.name)).toEqual(['000000010000000000000003']);
    // Once …03 is archived whole (from another copy, or by hand), the next pass removes its snapshot.
    archived.add('000000010000000000000003');
    await store.removeSupersededBy('00000001000000000000000B', async (n) => archived.has(n));
    expect(await store.list()).toEqual([]);
  });

  it('refuses to claim WAL the file does not hold (a position on a page never written)', async () => {
    const beyond = segmentStartLsn(SEG) + BigInt(5 * 8192 + 100);
    await expect(snapshotPartial(join(dir, `${SEG}.partial`), SEG, beyond, new Date(), o())).rejects.toThrow(/does not hold WAL up to 0\/700A064/);
    // The earlier snapshot stays the one indexed.
    expect((await o().partials.entry(SEG))?.walBytes).toBe(20_000);
    // A file gone (completed and renamed meanwhile) is no snapshot and no error.
    expect(await snapshotPartial(join(dir, 'gone.partial'), SEG, segmentStartLsn(SEG) + 100n, new Date(), o())).toBeNull();
  });
});

describe('the partial segment being received', () => {
  it("is the newest .partial in the spool, not the old timeline's last one pg_receivewal leaves there at a switch", () => {
    // readdir's order is the directory's own: the stale one listed first (QA, a promotion).
    const spooled = ['000000010000000000000005.partial', '00000002.history', '000000020000000000000006', '000000020000000000000007.partial'];
    expect(receiving(spooled)).toBe('000000020000000000000007.partial');
    expect(receiving([...spooled].reverse())).toBe('000000020000000000000007.partial');
    expect(receiving(['000000010000000000000003'])).toBeUndefined();
  });
});
