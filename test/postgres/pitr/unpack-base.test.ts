import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findAgeEngine } from '../../../src/crypto/age-cli.ts';
import { generateKeyPair } from '../../../src/crypto/age.ts';
import { unpackNative } from '../../../src/postgres/pitr/unpack-base.ts';

/**
 * The native unpack of a base backup (age -d | zstd -dc | tar, chained by descriptor) on a tar made the way tar makes
 * them: members, the end-of-archive blocks, then padding. GNU tar stops reading at those blocks; the unpack must not
 * call the rest of zstd's output, still on its way, a failure.
 */
describe('unpackNative', () => {
  let dir: string;
  let plain: string;
  let sealed: string;
  let identityFile: string;
  let sha: { plain: string; sealed: string };
  const member = randomBytes(3_000_000);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pgbb-unpack-'));
    await mkdir(join(dir, 'src'));
    await writeFile(join(dir, 'src', 'member'), member);
    await writeFile(join(dir, 'src', 'zeros'), Buffer.alloc(2_000_000));
    plain = join(dir, 'base.tar.zst');
    // A blocking factor of 2048 (1 MiB records): padding after the end-of-archive blocks, more than a pipe holds.
    await execa('bash', ['-o', 'pipefail', '-c', `tar -b 2048 -cf - -C "${join(dir, 'src')}" . | zstd -q -1 > "${plain}"`]);
    const keys = await generateKeyPair();
    identityFile = join(dir, 'key.txt');
    await writeFile(identityFile, keys.identityFileText, { mode: 0o600 });
    sealed = `${plain}.age`;
    await execa('age', ['-r', keys.recipient, '-o', sealed, plain]);
    const sum = async (f: string) => (await execa('sha256sum', [f])).stdout.slice(0, 64);
    sha = { plain: await sum(plain), sealed: await sum(sealed) };
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('unpacks every time, and returns the sha256 of the stored file', async () => {
    for (let i = 0; i < 5; i++) {
      const out = join(dir, `out-${i}`);
      await mkdir(out);
      expect(await unpackNative({ path: plain, dataDir: out })).toEqual({ sha256: sha.plain });
      expect((await readFile(join(out, 'member'))).equals(member)).toBe(true);
    }
  });

  it('decrypts with the age CLI, and says so when the key does not open the file', async () => {
    const engine = await findAgeEngine();
    if (engine.kind !== 'cli') throw new Error('the age CLI is needed here (Debian package age)');
    const out = join(dir, 'out-sealed');
    await mkdir(out);
    expect(await unpackNative({ path: sealed, dataDir: out, decrypt: { agePath: engine.path, identityFile } })).toEqual({ sha256: sha.sealed });
    expect((await readFile(join(out, 'member'))).equals(member)).toBe(true);
    const other = join(dir, 'other.txt');
    await writeFile(other, (await generateKeyPair()).identityFileText, { mode: 0o600 });
    await mkdir(join(dir, 'out-wrong'));
    await expect(unpackNative({ path: sealed, dataDir: join(dir, 'out-wrong'), decrypt: { agePath: engine.path, identityFile: other } })).rejects.toThrow(
      // The key is what to look at, named as wal-fetch names it (QA: it quoted age alone).
      `The base backup is encrypted for another key: BACKUP_ENCRYPTION_IDENTITY_FILE (${other}) does not match any of its recipients.`,
    );
  });
});
