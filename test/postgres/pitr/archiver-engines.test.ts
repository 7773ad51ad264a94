import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgeIdentity, generateKeyPair } from '../../../src/crypto/age.ts';
import { archiveWalFile } from '../../../src/postgres/pitr/archiver.ts';
import { segmentStartLsn } from '../../../src/postgres/pitr/lsn.ts';
import { snapshotPartial } from '../../../src/postgres/pitr/partial-archiver.ts';
import { PartialWalStore } from '../../../src/postgres/pitr/partial-store.ts';
import { fetchWal } from '../../../src/postgres/pitr/pitr-restore.ts';
import { LocalWalStore } from '../../../src/postgres/pitr/wal-store.ts';

/**
 * Every WAL file archived comes back byte for byte, whichever age engine encrypts it. With the age library (a host
 * without the age CLI) the encrypting stream is made after zstd has started; zstd's output written meanwhile was
 * dropped (execa resumes a stdout nobody reads), and the archive stored, hashed and indexed a segment missing its
 * head: a checksum that matched a file no recovery could read.
 */
describe('the WAL archiver, with the age CLI and with the age library', () => {
  let dir: string;
  let store: LocalWalStore;
  let recipient: string;
  let identity: AgeIdentity;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pgbb-archiver-'));
    const keys = await generateKeyPair();
    recipient = keys.recipient;
    identity = new AgeIdentity([keys.identityFileText.split('\n').find((l) => l.startsWith('AGE-SECRET-KEY-')) as string], 'in memory');
    store = new LocalWalStore(join(dir, 'backups'), 'app');
    await mkdir(join(dir, 'out'), { recursive: true });
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  // A segment switched early: a random head, the rest zeros; zstd writes its head within a millisecond or two.
  const segment = () => Buffer.concat([randomBytes(2 * 1024 * 1024), Buffer.alloc(14 * 1024 * 1024)]);

  for (const engine of [{ kind: 'library' as const }, { kind: 'cli' as const, path: 'age' }]) {
    it(`stores whole segments with the ${engine.kind} engine: each fetched back equals what was archived`, async () => {
      for (let i = 1; i <= 6; i++) {
        const name = `0000000100000000000000${String(i + (engine.kind === 'cli' ? 10 : 0)).padStart(2, '0')}`;
        const bytes = segment();
        const file = join(dir, name);
        await writeFile(file, bytes);
        await archiveWalFile(file, name, { store, zstd: 'zstd', level: 1, recipients: [recipient], ageEngine: engine });
        const out = join(dir, 'out', name);
        expect(await fetchWal(store, name, out, identity)).toBe(true);
        expect((await readFile(out)).equals(bytes), `${name} came back as archived`).toBe(true);
      }
    }, 60_000);

    it(`stores snapshots of the segment being written with the ${engine.kind} engine: each fetched back holds its WAL`, async () => {
      const partials = new PartialWalStore(join(dir, `partials-${engine.kind}`), 'app');
      for (let i = 1; i <= 4; i++) {
        const name = `0000000100000000000000${String(i + 20).padStart(2, '0')}`;
        // Written 8 kB pages, each starting with a WAL page's magic, for 2 MB; pg_receivewal's zeros after.
        const bytes = Buffer.alloc(16 * 1024 * 1024);
        for (let p = 0; p < 256; p++) {
          randomBytes(8192).copy(bytes, p * 8192);
          bytes.writeUInt16LE(0xd110, p * 8192);
        }
        const file = join(dir, `${name}.partial`);
        await writeFile(file, bytes);
        const flushed = segmentStartLsn(name) + BigInt(2 * 1024 * 1024);
        const entry = await snapshotPartial(file, name, flushed, new Date(), {
          store,
          partials,
          zstd: 'zstd',
          level: 1,
          recipients: [recipient],
          ageEngine: engine,
        });
        expect(entry?.walBytes).toBe(2 * 1024 * 1024);
        const out = join(dir, 'out', `${name}.${engine.kind}`);
        expect(await fetchWal(partials, name, out, identity)).toBe(true);
        expect((await readFile(out)).equals(bytes), `${name} came back as snapshotted`).toBe(true);
      }
    }, 60_000);
  }
});
