import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type EphemeralPostgres, startEphemeralPostgres } from '../../../src/dev/ephemeral.ts';
import { formatInZone } from '../../../src/schedules/time.ts';
import type { BaseBackup } from '../../../src/postgres/pitr/base-backup.ts';
import { forgetPitrReader, type PitrReader, pitrReaders, reservePitrBase } from '../../../src/postgres/pitr/pitr-readers.ts';
import { LocalWalStore, type WalEntry } from '../../../src/postgres/pitr/wal-store.ts';
import { cli } from '../../support/app-backups.ts';
import { readableByServer } from '../../support/recovered-server.ts';
import { backdateBase, backdateWal, pitrArchiveWithBases } from '../../support/pitr-archive.ts';

/**
 * PITR retention on a real cluster: three real base backups with the WAL archive streaming between them, then
 * backdated in the test's own storage (base.json finishedAt, index archivedAt) to 20, 10 and 1 days ago, with WAL kept
 * 7 days. `pg-backup-bot retention` as a user runs it. Which segment each base backup starts in is asked of the
 * server itself (pg_walfile_name), not of the bot.
 */
describe('PITR retention', () => {
  let source: EphemeralPostgres;
  let dir: string;
  let root: string;
  let env: Record<string, string>;
  const bases: BaseBackup[] = [];
  const startSegment = new Map<string, string>();

  const store = () => new LocalWalStore(root, 'app');
  const files = async () => ({
    bases: (await readdir(join(root, 'app', '_base'))).sort(),
    wal: (await readdir(join(root, 'app', '_wal'))).sort(),
  });
  const backdate = (b: BaseBackup, daysAgo: number) => backdateBase(root, b, daysAgo);

  beforeAll(async () => {
    source = await startEphemeralPostgres();
    dir = await mkdtemp(join(tmpdir(), 'pgbb-pitr-ret-'));
    root = join(dir, 'backups');
    await mkdir(dir, { recursive: true });
    const made = await pitrArchiveWithBases({ url: source.url, root, spool: join(dir, 'spool'), target: 'app', slot: 'pgbb_ret', count: 3 });
    const keys = made.keys;
    await writeFile(join(dir, 'key.txt'), keys.identityFileText, { mode: 0o600 });
    bases.push(...made.bases);
    for (const [k, v] of made.startSegment) startSegment.set(k, v);
    // 20, 10 and 1 days ago; the WAL before the second base backup archived 15 days ago.
    bases.splice(0, 3, await backdate(bases[0] as BaseBackup, 20), await backdate(bases[1] as BaseBackup, 10), await backdate(bases[2] as BaseBackup, 1));
    for (const e of await store().list()) if (e.name < (startSegment.get(bases[1]?.id as string) as string)) await backdateWal(store(), e, 15);
    await writeFile(
      join(dir, 'bot.yml'),
      'timezone: Europe/Paris\ntargets:\n  - name: app\n    urlEnv: APP_URL\n    environment: production\n    pitr: { urlEnv: APP_URL, walRetentionDays: 7 }\n',
    );
    env = {
      BOT_CONFIG: join(dir, 'bot.yml'),
      APP_URL: source.url,
      BACKUP_DIR: root,
      BACKUP_ENCRYPTION_RECIPIENT: keys.recipient,
      BACKUP_ENCRYPTION_IDENTITY_FILE: join(dir, 'key.txt'),
      REDIS_URL: inject('redisUrl'),
      QUEUE_PREFIX: `{pgbbt${randomBytes(3).toString('hex')}}`,
    };
  }, 180_000);

  afterAll(async () => {
    await source?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const b1 = () => bases[0] as BaseBackup;
  const b2 = () => bases[1] as BaseBackup;
  const b3 = () => bases[2] as BaseBackup;
  const walBefore = (segment: string, names: string[]) => names.filter((n) => /^[0-9A-F]{24}/.test(n) && n.slice(0, 24) < segment);

  it('dry run: changes nothing, and says the window before and after and what would go', async () => {
    const before = await files();
    const newest = (await store().list()).at(-1) as WalEntry;
    const run = await cli(['retention', '--dry-run'], env);
    expect(run.exitCode, run.stderr).toBe(0);
    expect(await files()).toEqual(before);
    const doomedWal = walBefore(startSegment.get(b2().id) as string, before.wal).filter((n) => n.endsWith('.json'));
    expect(doomedWal.length).toBeGreaterThan(0);
    // In the configured zone, as the schedules are.
    const formatTime = (iso: string) => formatInZone(new Date(iso), 'Europe/Paris');
    expect(run.stdout).toContain(`• window before: ${formatTime(b1().finishedAt)} to ${formatTime(newest.archivedAt)}`);
    expect(run.stdout).toContain(`• window after: ${formatTime(b2().finishedAt)} to ${formatTime(newest.archivedAt)}`);
    expect(run.stdout).toMatch(new RegExp(`• base backups: would delete 1 \\([^)]+\\), kept 2\\n   – ${b1().id}, finished `));
    expect(run.stdout).toContain(`• WAL files: would delete ${doomedWal.length} (`);
    expect(run.stdout).toContain(`kept from ${startSegment.get(b2().id)} on`);
  });

  it('keeps a base backup a restore is reading, and the WAL after it', async () => {
    const reading = await reservePitrBase(root, 'app', b1().id, { reader: 'a PITR restore test' });
    try {
      const before = await files();
      const run = await cli(['retention'], env);
      expect(run.exitCode, run.stderr).toBe(0);
      const after = await files();
      expect(after.bases).toEqual(before.bases);
      // Only WAL older than the reserved base backup's own start may go.
      const expected = before.wal.filter((n) => !walBefore(startSegment.get(b1().id) as string, before.wal).includes(n));
      expect(after.wal).toEqual(expected);
      expect(run.stdout).toContain(`– kept ${b1().id}: older than the window, kept: a restore is reading it`);
    } finally {
      await reading.release();
    }
  });

  it('restore-pitr holds the base backup it lays out against retention, and each wal-fetch renews the hold', { timeout: 120_000 }, async () => {
    // A moment just after the oldest base backup (backdated): restore-pitr chooses it.
    const at = new Date(Date.parse(b1().finishedAt) + 60_000).toISOString();
    await readableByServer([dir]);
    const laid = await cli(['restore-pitr', 'app', `--time=${at}`, `--data-dir=${join(dir, 'restored')}`], env);
    expect(laid.exitCode, laid.stderr).toBe(0);
    expect(laid.stdout).toContain(`Laid out base backup ${b1().id}`);
    const readers = await pitrReaders(root, 'app');
    expect(readers.active.map((r) => r.baseId)).toEqual([b1().id]);
    const reader = readers.active[0] as PitrReader;
    try {
      expect(Date.parse(reader.until) - Date.now()).toBeGreaterThan(23 * 3_600_000);
      // The restore_command the server will run names the hold.
      const conf = await readFile(join(dir, 'restored', 'postgresql.auto.conf'), 'utf8');
      expect(conf).toContain(`wal-fetch ''app'' %f "%p" --reader=${reader.token}; }'`);
      await new Promise((r) => setTimeout(r, 1100));
      const fetched = await cli(['wal-fetch', 'app', startSegment.get(b1().id) as string, join(dir, 'seg'), `--reader=${reader.token}`], env);
      expect(fetched.exitCode, fetched.stderr).toBe(0);
      const renewed = (await pitrReaders(root, 'app')).active[0] as PitrReader;
      expect(Date.parse(renewed.until)).toBeGreaterThan(Date.parse(reader.until));
      const before = await files();
      const run = await cli(['retention'], env);
      expect(run.exitCode, run.stderr).toBe(0);
      expect((await files()).bases).toEqual(before.bases);
    } finally {
      // The recovery is over: its hold goes (otherwise it expires a day after the last wal-fetch).
      await forgetPitrReader(root, 'app', reader.token);
      await rm(join(dir, 'restored'), { recursive: true, force: true });
    }
  });

  it('deletes exactly the old base backup and the WAL before the next one; the audit trail has each deletion', async () => {
    // A partial snapshot's index entry that does not parse: the window is said without it, and nothing less is deleted.
    const badPartial = join(root, 'app', '_wal', '_partial', 'FFFFFFFF0000000000000000.json');
    await mkdir(join(root, 'app', '_wal', '_partial'), { recursive: true });
    await writeFile(badPartial, '{"name": ');
    const before = await files();
    const run = await cli(['retention'], env).finally(() => rm(badPartial));
    expect(run.exitCode, run.stderr).toBe(0);
    expect(run.stdout).toContain(
      `• the partial segment's snapshots could not be read (The index entry of the partial WAL snapshot FFFFFFFF0000000000000000 in `,
    );
    expect(run.stdout).toContain('is unreadable (not the JSON the bot writes).): the window is shown to the newest whole segment');
    const after = await files();
    expect(after.bases).toEqual([b2().id, b3().id].sort());
    const gone = walBefore(startSegment.get(b2().id) as string, before.wal);
    expect(gone.length).toBeGreaterThan(0);
    expect(after.wal).toEqual(before.wal.filter((n) => !gone.includes(n)));
    // Every kept segment still has its file and its entry.
    for (const e of await store().list()) expect(after.wal).toContain(e.file);
    expect(run.stdout).toMatch(/• base backups: deleted 1 \([^)]+\), kept 2/);
    expect(run.stdout).toContain(`• WAL files: deleted ${gone.filter((n) => n.endsWith('.json')).length} (`);
    const audit = await readFile(join(root, '_audit', 'audit.jsonl'), 'utf8');
    expect(audit).toContain(`pitr app base backup ${b1().id}`);
    expect(audit).toMatch(
      /"args":"cli pitr app WAL [0-9A-F]{24} … [0-9A-F]{24}","decision":"n\/a","role":null,"jobId":null,"result":"deleted WAL \(\d+ file\(s\), \d+ bytes\)/,
    );
  });

  it('never deletes the newest base backup, even when every one is older than the window', async () => {
    await backdate(b2(), 12);
    await backdate(b3(), 9);
    const run = await cli(['retention'], env);
    expect(run.exitCode, run.stderr).toBe(0);
    expect((await files()).bases).toEqual([b3().id]);
    const wal = (await files()).wal;
    expect(walBefore(startSegment.get(b3().id) as string, wal)).toEqual([]);
    expect(wal).toContain(`${startSegment.get(b3().id)}.json`);
    const again = await cli(['retention'], env);
    expect(again.exitCode, again.stderr).toBe(0);
    expect((await files()).bases).toEqual([b3().id]);
    expect(again.stdout).toContain('• base backups: deleted 0 (0 B), kept 1');
  });
});
