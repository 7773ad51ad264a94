import { createHash } from 'node:crypto';
import { text } from 'node:stream/consumers';
import { finished } from 'node:stream/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { findRestorable, newRecordId, RECORDS_DIR, type Storage, strayBackups } from '../../src/storage/index.ts';
import type { BotError } from '../../src/errors.ts';
import { makeManifest, storeBackup } from '../fixtures/backups.ts';
import { makeRecord } from '../fixtures/records.ts';
import { memoryScrubState, scrubBackups } from '../../src/storage/scrub.ts';
import { silentLog } from '../support/postgres-helpers.ts';

/** A storage under test, with a look behind its back at what it really holds. Paths are relative to its root. */
export interface StorageBackend {
  storage: Storage & Required<Pick<Storage, 'listUnfinished' | 'listReserved'>>;
  /** Every file (local) or object key (S3) whose path starts with `under`, sorted. */
  files(under?: string): Promise<string[]>;
  /** Files a backup holds from its reservation on, besides its artifacts and manifest (S3's `.reserved` marker). */
  reserved: string[];
  /** Where listUnfinished says a backup lives: a directory or an `s3://` prefix. */
  location(target: string, backupId: string): string;
  read(path: string): Promise<string>;
  /** Writes a file behind the storage's back: a torn manifest, an overwritten artifact, a stray file. */
  put(path: string, body: string): Promise<void>;
  remove(path: string): Promise<void>;
  close(): Promise<void>;
}

/**
 * What every Storage promises (src/storage/types.ts), run against one backend: each test gets a fresh, empty
 * backend from `make`.
 */
export function storageContract(name: string, make: () => Promise<StorageBackend>): void {
  describe(`${name}: the Storage contract`, () => {
    let b: StorageBackend;
    let storage: StorageBackend['storage'];
    beforeEach(async () => {
      b = await make();
      storage = b.storage;
    });
    afterEach(() => b.close());

    /** The paths of a backup's files, as `files()` lists them. */
    const inBackup = (backupId: string, ...files: string[]) => [...b.reserved, ...files].map((f) => `app/${backupId}/${f}`).sort();

    it('lists nothing before the manifest, and reads a committed artifact back', async () => {
      const id = 'app-20260101T000000Z';
      await expect(storage.readManifest('app', id)).rejects.toMatchObject({ code: 'backup_not_found' });
      await storage.beginBackup('app', id);
      const w = await storage.createArtifactWriter('app', id, 'database.pgdump.zst');
      w.stream.end('hello');
      await finished(w.stream);
      await w.commit();
      expect(await b.files()).toEqual(inBackup(id, 'database.pgdump.zst'));
      expect(await storage.list()).toEqual([]);
      await expect(storage.readManifest('app', id)).rejects.toMatchObject({ code: 'backup_not_found' });
      expect(await text(await storage.openArtifact('app', id, 'database.pgdump.zst'))).toBe('hello');
    });

    it('writes the manifest last, after checking it and its artifacts, and then refuses new files', async () => {
      const m = await storeBackup(storage, 'app', 'app-20260101T000000Z', '2026-01-01T00:00:00.000Z');
      expect(await b.files(`app/${m.backupId}/`)).toEqual(inBackup(m.backupId, 'database.pgdump.zst', 'manifest.json'));
      expect(JSON.parse(await b.read(`app/${m.backupId}/manifest.json`))).toEqual(m);
      expect(await storage.readManifest('app', m.backupId)).toEqual(m);
      expect(await storage.list('app')).toEqual([m]);

      const bad = { ...m, artifacts: [{ ...m.artifacts[0], bytes: 999 }] } as typeof m;
      await expect(storage.writeManifest(bad)).rejects.toMatchObject({ code: 'storage_failed', userMessage: expect.stringContaining('not 999') });
      await expect(storage.writeManifest({ ...m, snapshotId: 3 } as unknown as typeof m)).rejects.toMatchObject({ code: 'internal' });
      const missing = makeManifest({ target: 'app', backupId: 'app-20260102T000000Z', startedAt: '2026-01-02T00:00:00Z' });
      await expect(storage.writeManifest(missing)).rejects.toMatchObject({ code: 'storage_failed' });
      await expect(storage.createArtifactWriter('app', m.backupId, 'globals.sql.zst')).rejects.toMatchObject({ code: 'storage_failed' });
    });

    it('lists newest first by startedAt across targets, not by name', async () => {
      // By name "zeta-2025…" sorts after "alpha-2026…"; by time it is older.
      const old = await storeBackup(storage, 'zeta', 'zeta-20250101T000000Z', '2025-01-01T00:00:00Z');
      const mid = await storeBackup(storage, 'alpha', 'alpha-20260101T000000Z', '2026-01-01T00:00:00Z');
      // An id whose stamp disagrees with startedAt: the manifest's time wins.
      const newest = await storeBackup(storage, 'alpha', 'alpha-20240101T000000Z', '2026-06-01T00:00:00.5Z');
      expect((await storage.list()).map((m) => m.backupId)).toEqual([newest.backupId, mid.backupId, old.backupId]);
      expect((await storage.list('alpha')).map((m) => m.backupId)).toEqual([newest.backupId, mid.backupId]);
      expect(await storage.list('nobody')).toEqual([]);
      await expect(storage.list('../x')).rejects.toMatchObject({ code: 'bad_request' });
    });

    it('never lists unfinished or broken backups', async () => {
      const good = await storeBackup(storage, 'app', 'app-20260101T000000Z', '2026-01-01T00:00:00Z');
      await storage.beginBackup('app', 'app-20260102T000000Z'); // unfinished: no manifest
      const broken = await storeBackup(storage, 'app', 'app-20260103T000000Z', '2026-01-03T00:00:00Z');
      await b.put(`app/${broken.backupId}/manifest.json`, '{"formatVersion": 1');
      const lost = await storeBackup(storage, 'app', 'app-20260104T000000Z', '2026-01-04T00:00:00Z');
      await b.remove(`app/${lost.backupId}/database.pgdump.zst`); // an interrupted delete
      const short = await storeBackup(storage, 'app', 'app-20260105T000000Z', '2026-01-05T00:00:00Z');
      await b.put(`app/${short.backupId}/database.pgdump.zst`, 'x'); // overwritten: the wrong size
      // Past its deadline, an artifact gone: retention's delete interrupted, left for it to finish: named as expired.
      const expired = await storeBackup(storage, 'app', 'app-20260106T000000Z', '2026-01-06T00:00:00Z', 'x', { retainUntil: '2026-02-05T00:00:00.000Z' });
      await b.remove(`app/${expired.backupId}/database.pgdump.zst`);
      await b.put('stray-file', 'x');
      await b.put('app/stray-file', 'x');
      expect(await storage.list()).toEqual([good]);
      // The storage says which finished backups it left out, and why: /backup list, `list` and health show them.
      const damagedOf = (target?: string) => (storage.damaged?.(target) ?? []).filter((d) => !d.expired);
      expect(damagedOf('app').map((d) => d.backupId)).toEqual([short.backupId, lost.backupId, broken.backupId]);
      expect((storage.damaged?.('app') ?? []).filter((d) => d.expired)).toEqual([
        { target: 'app', backupId: expired.backupId, why: 'artifact database.pgdump.zst is missing', expired: '2026-02-05T00:00:00.000Z' },
      ]);
      // Which fault, said: gone, or which size against the recorded one.
      expect(damagedOf('app')[1]?.why).toBe('artifact database.pgdump.zst is missing');
      expect(damagedOf('app')[0]?.why).toMatch(
        /^artifact database\.pgdump\.zst is 1 byte where its manifest records [\d,]+ bytes \(cut short or overwritten\)$/,
      );
      expect(damagedOf('other')).toEqual([]);
      // Why a manifest cannot be read, in its own words: here, JSON cut short.
      expect(damagedOf('app')[2]?.why).toMatch(/^The manifest of backup app-20260103T000000Z is unreadable \(.*JSON.*\), so that backup cannot be used\.$/);
      // Removed, it is no longer named.
      await storage.deleteBackup('app', lost.backupId);
      await storage.list();
      expect(damagedOf().map((d) => d.backupId)).toEqual([short.backupId, broken.backupId]);
      // What retention may finish deleting: every file gone or cut short, with its deadline (the plan cleans only
      // one past it); never a manifest that does not parse.
      const expiredShort = await storeBackup(storage, 'app', 'app-20260107T000000Z', '2026-01-07T00:00:00Z', 'xyz', {
        retainUntil: '2026-02-06T00:00:00.000Z',
      });
      await b.put(`app/${expiredShort.backupId}/database.pgdump.zst`, 'x');
      const unfinished = (await storage.listUnfinished?.(0, new Date(Date.now() + 60_000))) ?? [];
      expect(
        unfinished
          .filter((u) => u.state === 'artifacts-missing')
          .map((u) => [u.backupId, u.retainUntil])
          .sort(),
      ).toEqual(
        [
          [short.backupId, null],
          [expired.backupId, '2026-02-05T00:00:00.000Z'],
          [expiredShort.backupId, '2026-02-06T00:00:00.000Z'],
        ].sort(),
      );
      expect(damagedOf().map((d) => d.backupId)).not.toContain(expiredShort.backupId);
      await storage.list();
      expect((storage.damaged?.() ?? []).find((d) => d.backupId === expiredShort.backupId)?.expired).toBe('2026-02-06T00:00:00.000Z');
    });

    it('names a damaged backup past its deadline as expired: retention’s to delete, said until it is (QA: in no report for a day)', async () => {
      const soon = new Date(Date.now() + 1500).toISOString();
      const m = await storeBackup(storage, 'app', 'app-20260108T000000Z', '2026-01-08T00:00:00Z', 'abc', { retainUntil: soon });
      await b.put(`app/${m.backupId}/database.pgdump.zst`, 'x');
      await storage.list();
      expect((storage.damaged?.() ?? []).map((d) => [d.backupId, d.expired])).toEqual([[m.backupId, undefined]]);
      await new Promise((r) => setTimeout(r, Date.parse(soon) - Date.now() + 50));
      await storage.list();
      expect((storage.damaged?.() ?? []).map((d) => [d.backupId, d.expired])).toEqual([[m.backupId, soon]]);
    });

    it('findRestorable checks the one backup asked for: refuses a marked, lost or cut-short one with why and the newest good backup', async () => {
      const see = (t: string) => `\`list ${t}\``;
      const tested = await storeBackup(storage, 'app', 'app-20260111T000000Z', '2026-01-11T00:00:00Z', 'abcdef');
      const good = await storeBackup(storage, 'app', 'app-20260112T000000Z', '2026-01-12T00:00:00Z', 'abcdef');
      const failedTest = await storeBackup(storage, 'app', 'app-20260113T000000Z', '2026-01-13T00:00:00Z', 'abcdef');
      await storage.writeRecord(makeRecord({ backupId: failedTest.backupId, startedAt: '2026-01-13T05:00:00.000Z', passed: false, problems: ['rows differ'] }));
      const [marked, lost, short] = await Promise.all(
        ['14', '15', '16'].map((d) => storeBackup(storage, 'app', `app-202601${d}T000000Z`, `2026-01-${d}T00:00:00Z`, 'abcdef')),
      );
      await storage.markDamaged?.(
        'app',
        marked?.backupId ?? '',
        'the checksum scrub found artifact corrupted: database.pgdump.zst',
        new Date('2026-01-17T03:00:00Z'),
      );
      await b.remove(`app/${lost?.backupId}/database.pgdump.zst`);
      await b.put(`app/${short?.backupId}/database.pgdump.zst`, 'abc');
      expect((await findRestorable(storage, good.backupId, see)).backupId).toBe(good.backupId);
      expect((await findRestorable(storage, tested.backupId, see)).backupId).toBe(tested.backupId);
      // The newest good: not the one whose restore test failed.
      const tail = `The newest good backup of app is \`${good.backupId}\`; \`list app\` shows them all. Nothing was started.`;
      const refusals = await Promise.all([marked, lost, short].map((m) => findRestorable(storage, m?.backupId ?? '', see).catch((err: BotError) => err)));
      expect(refusals.map((e) => (e as BotError).code)).toEqual(['backup_damaged', 'backup_damaged', 'backup_damaged']);
      expect(refusals.map((e) => (e as BotError).userMessage)).toEqual([
        `Backup ${marked?.backupId} cannot be restored: the checksum scrub found artifact corrupted: database.pgdump.zst; marked 2026-01-17 03:00 UTC. ${tail}`,
        `Backup ${lost?.backupId} cannot be restored: artifact database.pgdump.zst is missing. ${tail}`,
        `Backup ${short?.backupId} cannot be restored: artifact database.pgdump.zst is 3 bytes where its manifest records 6 bytes (cut short or overwritten). ${tail}`,
      ]);
      // A manifest that does not parse: refused as damaged too, with the same way out (QA: it named no good backup).
      const unparsed = await storeBackup(storage, 'app', 'app-20260117T000000Z', '2026-01-17T00:00:00Z', 'abcdef');
      await b.put(`app/${unparsed.backupId}/manifest.json`, '{"backupId": "app-2026');
      const bad = await findRestorable(storage, unparsed.backupId, see).catch((err: BotError) => err);
      expect((bad as BotError).code).toBe('backup_damaged');
      expect((bad as BotError).userMessage).toMatch(
        new RegExp(
          `^The manifest of backup ${unparsed.backupId} is unreadable \\(.*JSON.*\\), so that backup cannot be used\\. ${tail.replace(/[.()`]/g, '\\$&')}$`,
        ),
      );
    });

    it('findRestorable: a backup whose roles file alone is lost is refused, saying its database archive can still be fetched', async () => {
      const good = await storeBackup(storage, 'app', 'app-20260120T000000Z', '2026-01-20T00:00:00Z', 'abcdef');
      const id = 'app-20260121T000000Z';
      await storage.beginBackup('app', id);
      const sha = (text: string) => createHash('sha256').update(text).digest('hex');
      for (const [file, body] of [
        ['database.pgdump.zst', 'abcdef'],
        ['globals.sql.zst', 'roles'],
      ] as const) {
        const w = await storage.createArtifactWriter('app', id, file);
        w.stream.end(body);
        await finished(w.stream);
        await w.commit();
      }
      const artifacts = [
        { bytes: 6, sha256: sha('abcdef') },
        { file: 'globals.sql.zst', bytes: 5, sha256: sha('roles') },
      ];
      await storage.writeManifest(makeManifest({ target: 'app', startedAt: '2026-01-21T00:00:00Z', artifacts }));
      await b.remove(`app/${id}/globals.sql.zst`);
      await expect(findRestorable(storage, id, (t) => `\`list ${t}\``)).rejects.toThrow(
        `Backup ${id} cannot be restored: artifact globals.sql.zst is missing. The newest good backup of app is \`${good.backupId}\`; \`list app\` shows them all. Nothing was started. Its database archive is intact: a restore that does not apply the backup's roles (without --with-globals) goes on, or \`pg-backup-bot fetch ${id} -o FILE\` then pg_restore (README "Disaster recovery").`,
      );
      // A restore that does not apply the roles never reads that file: it is given the backup.
      expect((await findRestorable(storage, id, (t) => `\`list ${t}\``, false)).backupId).toBe(id);
      // The listing leaves it out, saying its archive is intact (not "cannot restore"); a lost archive is not.
      await storage.list('app');
      expect(storage.damaged?.('app').find((d) => d.backupId === id)).toMatchObject({ why: 'artifact globals.sql.zst is missing', archiveIntact: true });
      await b.remove(`app/${id}/database.pgdump.zst`);
      await storage.list('app');
      expect(storage.damaged?.('app').find((d) => d.backupId === id)?.archiveIntact).toBeUndefined();
    });

    it('a backup the checksum scrub marks damaged is left out of every listing, saying why; past its deadline, named as expired until retention deletes it', async () => {
      const soon = new Date(Date.now() + 1500).toISOString();
      const rotted = await storeBackup(storage, 'app', 'app-20260109T000000Z', '2026-01-09T00:00:00Z', 'abcdef', { retainUntil: soon });
      const good = await storeBackup(storage, 'app', 'app-20260110T000000Z', '2026-01-10T00:00:00Z', 'abcdef');
      // Same size, other bytes: the listing, which checks sizes, still calls it good; only reading it back tells.
      await b.put(`app/${rotted.backupId}/database.pgdump.zst`, 'abcdeX');
      expect((await storage.list()).map((m) => m.backupId)).toEqual([good.backupId, rotted.backupId]);
      // A seventh of what is stored, at least one backup: this run reads the one written longest ago, the rotted one.
      const state = memoryScrubState();
      const report = await scrubBackups({ storage, state, now: new Date('2026-01-11T03:00:00Z'), log: silentLog });
      expect(report).toMatchObject({ verified: [], stored: 2, unreadable: [] });
      expect(report.damaged.map((d) => d.backupId)).toEqual([rotted.backupId]);
      expect(report.damaged[0]?.why).toMatch(
        /^the checksum scrub found artifact corrupted: database\.pgdump\.zst \(sha256 [0-9a-f]{12}… expected, [0-9a-f]{12}… found\)$/,
      );
      expect((await storage.list()).map((m) => m.backupId)).toEqual([good.backupId]);
      expect(storage.damaged?.('app')).toEqual([
        { target: 'app', backupId: rotted.backupId, why: `${report.damaged[0]?.why}; marked 2026-01-11 03:00 UTC`, marked: true },
      ]);
      // Retention sees it with its deadline, and leaves it until then (retention-plan.ts: damage within it is kept).
      expect((await storage.listUnfinished(0)).map((u) => [u.backupId, u.state, u.retainUntil])).toEqual([[rotted.backupId, 'marked-damaged', soon]]);
      // The next run reads the other one, and finds it whole.
      expect(await scrubBackups({ storage, state, now: new Date('2026-01-12T03:00:00Z'), log: silentLog })).toMatchObject({
        verified: [good.backupId],
        damaged: [],
        stored: 1,
      });
      // Past its deadline it is retention's to delete, and still named, with its deadline (QA: it was in no report).
      await new Promise((r) => setTimeout(r, Date.parse(soon) - Date.now() + 50));
      await storage.list();
      expect(storage.damaged?.()).toEqual([expect.objectContaining({ backupId: rotted.backupId, marked: true, expired: soon })]);
      const scrubbed = await scrubBackups({ storage, state, now: new Date('2026-01-13T03:00:00Z'), log: silentLog });
      expect(scrubbed).toMatchObject({ alreadyDamaged: [], expired: [{ backupId: rotted.backupId, deadline: soon }] });
      await storage.deleteBackup('app', rotted.backupId);
      await storage.list();
      expect(storage.damaged?.()).toEqual([]);
      expect(await b.files(`app/${rotted.backupId}/`)).toEqual([]);
    });

    it('reserves a backup name exclusively', async () => {
      await storage.beginBackup('app', 'app-20260101T000000Z');
      await expect(storage.beginBackup('app', 'app-20260101T000000Z')).rejects.toMatchObject({
        code: 'backup_exists',
        userMessage: expect.stringContaining('already exists'),
      });
    });

    it('deletes artifacts, leftovers and the manifest, leaving nothing of the backup and its name free', async () => {
      const m = await storeBackup(storage, 'app', 'app-20260101T000000Z', '2026-01-01T00:00:00Z');
      const keep = await storeBackup(storage, 'app', 'app-20260102T000000Z', '2026-01-02T00:00:00Z');
      await b.put(`app/${m.backupId}/leftover.partial`, 'x');
      await storage.deleteBackup('app', m.backupId);
      expect(await b.files(`app/${m.backupId}/`)).toEqual([]);
      expect(await storage.list()).toEqual([keep]);
      await expect(storage.deleteBackup('app', m.backupId)).rejects.toMatchObject({ code: 'backup_not_found' });
      await storage.beginBackup('app', m.backupId); // not even the reservation is left
    });

    it('discards an unfinished backup but refuses to discard a finished one', async () => {
      const m = await storeBackup(storage, 'app', 'app-20260101T000000Z', '2026-01-01T00:00:00Z');
      await expect(storage.discardUnfinished('app', m.backupId)).rejects.toMatchObject({ code: 'storage_failed' });
      await storage.beginBackup('app', 'app-20260102T000000Z');
      const w = await storage.createArtifactWriter('app', 'app-20260102T000000Z', 'database.pgdump.zst');
      w.stream.write('partial data');
      await w.abort();
      await w.abort(); // twice is fine
      const w2 = await storage.createArtifactWriter('app', 'app-20260102T000000Z', 'globals.sql.zst');
      w2.stream.end('left behind by a crash');
      await finished(w2.stream);
      await w2.commit();
      await storage.discardUnfinished('app', 'app-20260102T000000Z');
      expect(await b.files('app/')).toEqual(inBackup(m.backupId, 'database.pgdump.zst', 'manifest.json'));
      await storage.beginBackup('app', 'app-20260102T000000Z'); // the name is free again
    });

    it('finds unfinished backups older than a threshold', async () => {
      await storeBackup(storage, 'app', 'app-20260101T000000Z', '2026-01-01T00:00:00Z');
      await storage.beginBackup('app', 'app-20260102T000000Z');
      expect(await storage.listUnfinished(60_000)).toEqual([]);
      const later = new Date(Date.now() + 3600_000);
      expect((await storage.listUnfinished(60_000, later)).map((u) => [u.backupId, u.path])).toEqual([
        ['app-20260102T000000Z', b.location('app', 'app-20260102T000000Z')],
      ]);
    });

    it('names the job that reserved each unfinished backup, and lists no finished one', async () => {
      const owner = { queue: '{pgbb}:backup', jobId: 'backup-app-7f3a' };
      const dead = 'app-20260102T000000Z';
      await storage.beginBackup('app', dead, owner);
      const w = await storage.createArtifactWriter('app', dead, 'database.pgdump.zst');
      w.stream.write('half a dump'); // a worker killed mid-dump: the writer never ends
      await storage.beginBackup('app', 'app-20260103T000000Z'); // nobody named: the CLI, a copy, an older version
      await storage.beginBackup('app', 'app-20260104T000000Z');
      await b.put('app/app-20260104T000000Z/.reserved', '{"backupId": "app-2026'); // a marker torn by a crash
      // A finished backup whose reservation named a job: never listed here, and deleted whole.
      const kept = 'app-20260101T000000Z';
      await storage.beginBackup('app', kept, { ...owner, jobId: 'backup-app-done' });
      const fw = await storage.createArtifactWriter('app', kept, 'database.pgdump.zst');
      fw.stream.end('whole');
      await finished(fw.stream);
      await fw.commit();
      const m = makeManifest({
        target: 'app',
        backupId: kept,
        startedAt: '2026-01-01T00:00:00Z',
        artifacts: [{ bytes: 5, sha256: createHash('sha256').update('whole').digest('hex') }],
      });
      await storage.writeManifest(m);

      const reserved = (await storage.listReserved()).sort((x, y) => x.backupId.localeCompare(y.backupId));
      const written = { modifiedAt: expect.any(Date) };
      expect(reserved).toEqual([
        { target: 'app', backupId: dead, path: b.location('app', dead), owner, ...written },
        { target: 'app', backupId: 'app-20260103T000000Z', path: b.location('app', 'app-20260103T000000Z'), owner: null, ...written },
        { target: 'app', backupId: 'app-20260104T000000Z', path: b.location('app', 'app-20260104T000000Z'), owner: null, ...written },
      ]);
      for (const r of reserved) expect(Math.abs(Date.now() - r.modifiedAt.getTime())).toBeLessThan(60_000);
      // An hour unwritten, listings name them (strayBackups); a finished backup is never among them.
      expect(await strayBackups(storage, 'app')).toEqual([]);
      const later = new Date(Date.now() + 2 * 3600_000);
      expect((await strayBackups(storage, 'app', later)).map((r) => r.backupId)).toEqual(['app-20260104T000000Z', 'app-20260103T000000Z', dead]);
      expect(await strayBackups(storage, 'other', later)).toEqual([]);
      // The marker is the reservation's own file: no artifact, never listed as a backup, gone with the backup.
      expect(await b.files(`app/${kept}/`)).toEqual([`app/${kept}/.reserved`, `app/${kept}/database.pgdump.zst`, `app/${kept}/manifest.json`]);
      expect(await storage.list()).toEqual([m]);
      await w.abort();
      await storage.discardUnfinished('app', dead);
      expect(await b.files(`app/${dead}/`)).toEqual([]);
      await storage.deleteBackup('app', kept);
      expect(await b.files(`app/${kept}/`)).toEqual([]);
      expect((await storage.listReserved()).map((r) => r.backupId).sort()).toEqual(['app-20260103T000000Z', 'app-20260104T000000Z']);
    });

    it('refuses names that could escape the root', async () => {
      await expect(storage.beginBackup('../etc', 'x-20260101T000000Z')).rejects.toMatchObject({ code: 'bad_request' });
      await expect(storage.beginBackup('app', 'other-20260101T000000Z')).rejects.toMatchObject({ code: 'bad_request' });
      await storage.beginBackup('app', 'app-20260101T000000Z');
      for (const file of ['../x', '.hidden', '.reserved', 'manifest.json', 'a.partial', 'a/b']) {
        await expect(storage.createArtifactWriter('app', 'app-20260101T000000Z', file)).rejects.toMatchObject({ code: 'bad_request' });
      }
      await expect(storage.openArtifact('app', 'app-20260101T000000Z', 'nothing.zst')).rejects.toMatchObject({ code: 'backup_not_found' });
    });

    describe('restore records', () => {
      const records = (kind: 'restore-test' | 'restore') => `app/${RECORDS_DIR}/${kind}/`;

      it('writes each record beside the backups and lists them newest first by start time', async () => {
        const old = makeRecord({ startedAt: '2026-01-01T00:00:00.000Z' });
        const newest = makeRecord({ startedAt: '2026-03-01T00:00:00.000Z', passed: false, problems: ['indexes: 21 expected, 20 restored'] });
        const mid = makeRecord({ startedAt: '2026-02-01T00:00:00.000Z', target: 'billing', backupId: 'billing-20260201T000000Z' });
        for (const r of [mid, old, newest]) await storage.writeRecord(r);

        expect(await b.files(records('restore-test'))).toEqual(
          [`${records('restore-test')}${old.id}.json`, `${records('restore-test')}${newest.id}.json`].sort(),
        );
        expect(JSON.parse(await b.read(`${records('restore-test')}${old.id}.json`))).toEqual(old);
        expect(await storage.listRecords('restore-test')).toEqual([newest, mid, old]);
        expect(await storage.listRecords('restore-test', 'app')).toEqual([newest, old]);
        expect(await storage.listRecords('restore')).toEqual([]);
        expect(await storage.listRecords('restore-test', 'nobody')).toEqual([]);
      });

      it('keeps restores apart from restore tests', async () => {
        const r = makeRecord({
          startedAt: '2026-01-05T00:00:00.000Z',
          kind: 'restore',
          passed: null,
          database: 'app_restore_1',
          dropped: false,
          selection: { tables: ['shop.orders'], schemas: [], into: null, created: true },
        });
        await storage.writeRecord(r);
        expect(await b.files(`app/${RECORDS_DIR}/`)).toEqual([`${records('restore')}${r.id}.json`]);
        expect(await storage.listRecords('restore')).toEqual([r]);
        expect(await storage.listRecords('restore', 'app')).toEqual([r]);
        expect(await storage.listRecords('restore-test', 'app')).toEqual([]);
      });

      it('never shows records as a backup or an unfinished backup, and keeps them when the backup is deleted', async () => {
        const m = await storeBackup(storage, 'app', 'app-20260101T000000Z', '2026-01-01T00:00:00Z');
        const r = makeRecord({ startedAt: '2026-01-02T00:00:00.000Z' });
        await storage.writeRecord(r);
        expect(await storage.list()).toEqual([m]);
        expect(await storage.list('app')).toEqual([m]);
        expect(await storage.listUnfinished(0, new Date(Date.now() + 86_400_000))).toEqual([]);
        await storage.deleteBackup('app', m.backupId);
        expect(await storage.list()).toEqual([]);
        expect(await storage.listRecords('restore-test', 'app')).toEqual([r]);
      });

      it('refuses an invalid record and skips an unreadable file', async () => {
        await expect(storage.writeRecord({ ...makeRecord({ startedAt: '2026-01-01T00:00:00.000Z' }), id: '../../etc' })).rejects.toMatchObject({
          code: 'internal',
        });
        await expect(storage.writeRecord({ ...makeRecord({ startedAt: '2026-01-01T00:00:00.000Z' }), target: 'Bad/Target' })).rejects.toMatchObject({
          code: 'internal',
        });
        const good = makeRecord({ startedAt: '2026-01-01T00:00:00.000Z' });
        await storage.writeRecord(good);
        await b.put(`${records('restore-test')}${newRecordId(new Date('2026-02-01T00:00:00Z'))}.json`, '{"formatVersion": 1');
        await b.put(`${records('restore-test')}notes.txt`, 'not a record');
        expect(await storage.listRecords('restore-test', 'app')).toEqual([good]);
        await expect(storage.listRecords('restore-test', '../x')).rejects.toMatchObject({ code: 'bad_request' });
      });
    });
  });
}
