import { createHash } from 'node:crypto';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Transform, Writable } from 'node:stream';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEncryptStream, generateKeyPair } from '../../../src/crypto/age.ts';
import { ToolPipeError, type ToolPipeOptions } from '../../../src/postgres/backup/tool-chain.ts';
import { runToolIntoZstd } from '../../../src/postgres/backup/tool-pipe.ts';

function collector() {
  const chunks: Buffer[] = [];
  const stream = new Writable({
    write(c: Buffer, _e, cb) {
      chunks.push(Buffer.from(c));
      cb();
    },
  });
  return { stream, bytes: () => Buffer.concat(chunks) };
}

// Compressible but not trivial: 4 MiB of one random ~1 KB line, repeated.
const PATTERN = 'yes "$(head -c 700 /dev/urandom | base64 -w0)" | head -c 4194304';

describe('runToolIntoZstd with encryption', () => {
  let dir: string;
  let keys: { recipient: string; file: string };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pgbb-pipe-enc-'));
    const kp = await generateKeyPair();
    keys = { recipient: kp.recipient, file: join(dir, 'k') };
    await writeFile(keys.file, kp.identityFileText, { mode: 0o600 });
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const run = (extra: Partial<ToolPipeOptions> & Pick<ToolPipeOptions, 'destination'>) =>
    runToolIntoZstd({ command: 'sh', args: ['-c', PATTERN], env: { PATH: process.env.PATH ?? '' }, zstd: 'zstd', level: 1, ...extra });

  it.each([
    [
      'the age CLI chained by file descriptor',
      async (): Promise<Partial<ToolPipeOptions>> => ({ encryptCommand: { command: 'age', args: ['-r', keys.recipient] } }),
    ],
    ['age-encryption in this process', async (): Promise<Partial<ToolPipeOptions>> => ({ encrypt: await createEncryptStream([keys.recipient]) })],
  ])('hashes and stores the encrypted bytes, which decrypt and decompress to the raw dump (%s)', async (_name, engine) => {
    const stored = collector();
    const r = await run({ destination: stored.stream, ...(await engine()) });
    expect(r.rawBytes).toBe(4 * 1024 * 1024);
    expect(r.bytes).toBe(stored.bytes().length);
    expect(r.sha256).toBe(createHash('sha256').update(stored.bytes()).digest('hex'));
    expect(stored.bytes().subarray(0, 22).toString()).toBe('age-encryption.org/v1\n');
    await writeFile(join(dir, 'stored.age'), stored.bytes());
    const { stdout } = await execa('age', ['-d', '-i', keys.file, join(dir, 'stored.age')], { encoding: 'buffer' }).pipe('zstd', ['-dc']);
    expect(stdout.length).toBe(4 * 1024 * 1024);
  });

  it('names the encryptor when the age command fails, even after it wrote part of a file', async () => {
    for (const body of ["cat >/dev/null; echo 'age: error: boom' >&2; exit 1", 'head -c 100 /dev/zero; exit 1']) {
      const script = join(dir, 'bad-age');
      await writeFile(script, `#!/bin/sh\n${body}\n`);
      await chmod(script, 0o755);
      const err = await run({ destination: collector().stream, encryptCommand: { command: script, args: [] } }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ToolPipeError);
      expect((err as ToolPipeError).stage).toBe('encryptor');
    }
  });

  it('names the encryptor when the in-process stream fails', async () => {
    const broken = new Transform({
      transform(_c, _e, done) {
        done(new Error('cipher exploded'));
      },
    });
    const err = await run({ destination: collector().stream, encrypt: broken }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ToolPipeError);
    expect((err as ToolPipeError).stage).toBe('encryptor');
  });
});
