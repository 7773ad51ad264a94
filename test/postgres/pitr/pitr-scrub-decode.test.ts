import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPair } from '../../../src/crypto/age.ts';
import { archiveWalFile } from '../../../src/postgres/pitr/archiver.ts';
import { scrubKey } from '../../../src/postgres/pitr/pitr-scrub-decode.ts';
import { scrubPitrArchives } from '../../../src/postgres/pitr/pitr-scrub.ts';
import { archivedWal } from '../../../src/postgres/pitr/wal-index.ts';
import { LocalWalStore } from '../../../src/postgres/pitr/wal-store.ts';
import { memoryScrubState } from '../../../src/storage/scrub.ts';
import { silentLog } from '../../support/postgres-helpers.ts';

const SEGMENTS = ['000000010000000000000011', '000000010000000000000012', '000000010000000000000013'];
const HEADLESS = SEGMENTS[1] as string;

/**
 * The decoding scrub (pitr-scrub-decode.ts). Before 38afbe9 a host without the age CLI could archive a segment whose
 * first compressed bytes were lost, then hash what it wrote: the checksum scrub called it good, the window counted
 * it, and only a recovery reading it would have failed. Made here as that code made it: zstd's output without its
 * head, encrypted whole to the archive's key, its record holding the sha256 of what was written.
 */
describe('the archive scrub that decrypts and decompresses WAL', () => {
  let dir: string;
  let root: string;
  let store: LocalWalStore;
  let keyFile: string;
  let otherKeyFile: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pgbb-scrub-decode-'));
    root = join(dir, 'backups');
    store = new LocalWalStore(root, 'shop');
    const key = await generateKeyPair();
    keyFile = join(dir, 'key.txt');
    otherKeyFile = join(dir, 'other.txt');
    await writeFile(keyFile, key.identityFileText, { mode: 0o600 });
    await writeFile(otherKeyFile, (await generateKeyPair()).identityFileText, { mode: 0o600 });
    for (const name of SEGMENTS) {
      const file = join(dir, name);
      await writeFile(file, Buffer.concat([randomBytes(256 * 1024), Buffer.alloc(16 * 1024 * 1024 - 256 * 1024)]));
      await archiveWalFile(file, name, { store, zstd: 'zstd', level: 1, recipients: [key.recipient], ageEngine: { kind: 'library' } });
    }
    // The headless one: its compressed stream cut at the front, encrypted and recorded as the old archiver did.
    const raw = await readFile(join(dir, HEADLESS));
    const compressed = (await execa('zstd', ['-1', '-c'], { input: raw, encoding: 'buffer' })).stdout;
    const encrypted = (await execa('age', ['-r', key.recipient], { input: compressed.subarray(4096), encoding: 'buffer' })).stdout;
    const entry = (await store.entry(HEADLESS)) as NonNullable<Awaited<ReturnType<LocalWalStore['entry']>>>;
    await writeFile(join(store.dir, entry.file), encrypted);
    const sha256 = createHash('sha256').update(encrypted).digest('hex');
    await writeFile(join(store.dir, `${HEADLESS}.json`), JSON.stringify({ ...entry, bytes: encrypted.length, sha256 }));
  }, 60_000);
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const scrub = async (decode?: { identity: Awaited<ReturnType<typeof scrubKey>> }) =>
    scrubPitrArchives({ root, targets: ['shop'], state: memoryScrubState(), now: new Date(), log: silentLog, all: true, ...(decode ? { decode } : {}) });

  it('hashes alone call the headless segment good: why the decode is needed', async () => {
    const r = await scrub();
    expect(r.verified).toBe(3);
    expect(r.damaged).toEqual([]);
    expect(r.decoded).toBe(0);
  });

  it('with the key restores use, a file whose key does not open it is said once, and nothing is called damaged', async () => {
    const other = await scrub({ identity: await scrubKey(otherKeyFile) });
    expect(other.damaged).toEqual([]);
    expect(other.verified).toBe(3);
    expect(other.decoded).toBe(0);
    expect(other.notDecoded).toBe(3);
    expect(other.notDecodedWhy).toMatch(/encrypted for another key.*checked by its sha256 only/);
    const none = await scrub({ identity: await scrubKey(undefined) });
    expect(none.notDecodedWhy).toBe('BACKUP_ENCRYPTION_IDENTITY_FILE is not set on this worker: encrypted WAL was checked by its sha256 only');
    const missing = await scrub({ identity: await scrubKey(join(dir, 'nope.txt')) });
    expect(missing.notDecoded).toBe(3);
    expect(missing.notDecodedWhy).toMatch(/nope\.txt.*checked by its sha256 only/);
    expect((await archivedWal(store)).map((e) => e.name)).toEqual(SEGMENTS);
  });

  it('a host without zstd checks hashes only and says why: nothing is called damaged, nothing moved (second reader)', async () => {
    const path = process.env.PATH;
    process.env.PATH = join(dir, 'no-tools-here');
    let r: Awaited<ReturnType<typeof scrub>>;
    try {
      r = await scrub({ identity: await scrubKey(keyFile) });
    } finally {
      process.env.PATH = path;
    }
    expect(r.damaged).toEqual([]);
    expect(r.unreadable).toEqual([]);
    expect(r.verified).toBe(3);
    expect(r.decoded).toBe(0);
    expect(r.notDecoded).toBe(3);
    expect(r.notDecodedWhy).toMatch(/^zstd cannot run here \(The zstd compressor is not installed.*\): WAL was checked by its sha256 only$/);
    expect((await archivedWal(store)).map((e) => e.name)).toEqual(SEGMENTS);
  });

  it('decodes every segment: the whole ones pass, the headless one is named and set aside, so the window ends before it', async () => {
    const r = await scrub({ identity: await scrubKey(keyFile) });
    expect(r.decoded).toBe(2);
    expect(r.notDecodedWhy).toBeNull();
    expect(r.damaged).toHaveLength(1);
    expect(r.damaged[0]?.what).toBe(`WAL ${HEADLESS}`);
    expect(r.damaged[0]?.why).toMatch(
      /^the decoding scrub found its bytes match their sha256, but it does not decompress: .+: it was stored damaged, two decodes alike; moved aside as .+\.damaged$/,
    );
    const left = (await archivedWal(store)).map((e) => e.name);
    expect(left).toEqual([SEGMENTS[0], SEGMENTS[2]]);
    // The next run names it as damage still there, without reading it.
    const again = await scrub({ identity: await scrubKey(keyFile) });
    expect(again.damaged).toEqual([]);
    expect(again.decoded).toBe(2);
    expect(again.alreadyDamaged.map((d) => d.what)).toEqual([`WAL ${HEADLESS}`]);
  });
});
