import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Duplex, Transform, Writable } from 'node:stream';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEncryptStream, generateKeyPair } from '../../src/crypto/age.ts';
import type { AgeEngine } from '../../src/crypto/age-cli.ts';
import { runToolIntoZstd, ToolPipeError } from '../../src/postgres/tool-pipe.ts';

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

describe('runToolIntoZstd with encryption and a tap', () => {
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

  const engines: Array<[string, AgeEngine]> = [
    ['library', { kind: 'library' }],
    ['age CLI', { kind: 'cli', path: 'age' }],
  ];
  it.each(engines)('taps the compressed stream before age, and hashes and stores the encrypted bytes (%s)', async (_name, engine) => {
    const stored = collector();
    const tap = collector();
    const r = await runToolIntoZstd({
      command: 'sh',
      args: ['-c', PATTERN],
      env: { PATH: process.env.PATH ?? '' },
      zstd: 'zstd',
      level: 1,
      destination: stored.stream,
      encrypt: await createEncryptStream([keys.recipient], engine),
      tap: tap.stream,
    });
    expect(r.rawBytes).toBe(4 * 1024 * 1024);
    expect(r.bytes).toBe(stored.bytes().length);
    expect(r.sha256).toBe(createHash('sha256').update(stored.bytes()).digest('hex'));
    await writeFile(join(dir, 'stored.age'), stored.bytes());
    // What age decrypts is byte for byte what the verifier was fed.
    const { stdout } = await execa('age', ['-d', '-i', keys.file, join(dir, 'stored.age')], { encoding: 'buffer' });
    expect(Buffer.from(stdout).equals(tap.bytes())).toBe(true);
    const raw = await execa('zstd', ['-dc'], { input: tap.bytes(), encoding: 'buffer' });
    expect(raw.stdout.length).toBe(4 * 1024 * 1024);
  });

  it('keeps going when the tap stops reading early (a TOC listing), and never waits for it', async () => {
    const stored = collector();
    let seen = 0;
    const tap = new Writable({
      highWaterMark: 1,
      write(c: Buffer, _e, cb) {
        seen += c.length;
        // Like pg_restore --list: take the front, then go away.
        this.destroy(new Error('EPIPE'));
        cb();
      },
    });
    tap.on('error', () => undefined);
    const r = await runToolIntoZstd({ command: 'head', args: ['-c', '3000000', '/dev/urandom'], env: {}, zstd: 'zstd', level: 1, destination: stored.stream, tap });
    expect(seen).toBeGreaterThan(0);
    expect(r.bytes).toBe(stored.bytes().length);
    expect(r.bytes).toBeGreaterThan(3_000_000);
  });

  it('names the encryption stage when it is the one that fails', async () => {
    const broken: Duplex = new Transform({
      transform(_c, _e, done) {
        done(new Error('cipher exploded'));
      },
    });
    const err = await runToolIntoZstd({ command: 'head', args: ['-c', '100000', '/dev/zero'], env: {}, zstd: 'zstd', level: 1, destination: collector().stream, encrypt: broken }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ToolPipeError);
    expect((err as ToolPipeError).stage).toBe('encryptor');
  });
});
