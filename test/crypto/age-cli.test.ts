import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDecryptStream, createEncryptStream, generateKeyPair, loadIdentity } from '../../src/crypto/age.ts';
import { findAgeEngine } from '../../src/crypto/age-cli.ts';

function collector() {
  const chunks: Buffer[] = [];
  return {
    stream: new Writable({
      write(c: Buffer, _e, cb) {
        chunks.push(Buffer.from(c));
        cb();
      },
    }),
    bytes: () => Buffer.concat(chunks),
  };
}

describe('the age CLI engine (src/crypto/age-cli.ts)', () => {
  let dir: string;
  let keys: Array<{ recipient: string; file: string }>;
  const data = randomBytes(5 * 64 * 1024 + 123);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pgbb-agecli-'));
    keys = [];
    for (const name of ['a', 'b']) {
      const kp = await generateKeyPair();
      await writeFile(join(dir, name), kp.identityFileText, { mode: 0o600 });
      keys.push({ recipient: kp.recipient, file: join(dir, name) });
    }
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const script = async (name: string, body: string) => {
    const path = join(dir, name);
    await writeFile(path, `#!/bin/sh\n${body}\n`);
    await chmod(path, 0o755);
    return path;
  };

  it('is found on PATH here; null forces the library; a configured path that does not run is an error', async () => {
    expect(await findAgeEngine()).toEqual({ kind: 'cli', path: 'age' });
    expect(await findAgeEngine(null)).toEqual({ kind: 'library' });
    await expect(findAgeEngine(join(dir, 'missing-age'))).rejects.toMatchObject({ code: 'pg_tool_missing' });
  });

  it('writes what the library decrypts, for every recipient', async () => {
    const out = collector();
    const recipients = keys.map((k) => k.recipient);
    await pipeline(Readable.from([data]), await createEncryptStream(recipients, await findAgeEngine()), out.stream);
    for (const k of keys) {
      const plain = collector();
      await pipeline(await createDecryptStream(Readable.from([out.bytes()]), await loadIdentity(k.file, 'test'), recipients), plain.stream);
      expect(plain.bytes().equals(data)).toBe(true);
    }
  });

  it('errors the stream, never ends it short, when age fails after writing nothing or half a file', async () => {
    const nothing = await script('age-nothing', "cat >/dev/null; echo 'age: error: boom' >&2; exit 1");
    const half = await script('age-half', 'head -c 1000 /dev/zero; cat >/dev/null; exit 3');
    for (const [path, message] of [
      [nothing, /age failed \(exit code 1\): age: error: boom/],
      [half, /age failed \(exit code 3\)/],
    ] as const) {
      const out = collector();
      await expect(pipeline(Readable.from([data]), await createEncryptStream([keys[0]?.recipient ?? ''], { kind: 'cli', path }), out.stream)).rejects.toThrow(
        message,
      );
    }
  });

  it('gives age no environment but PATH (the bot holds tokens and URLs)', async () => {
    const spy = await script('age-env', `env > '${join(dir, 'env.txt')}'; exec age "$@"`);
    process.env.PGBB_TEST_SECRET = 'should-not-leak';
    try {
      await pipeline(Readable.from([data]), await createEncryptStream([keys[0]?.recipient ?? ''], { kind: 'cli', path: spy }), collector().stream);
    } finally {
      delete process.env.PGBB_TEST_SECRET;
    }
    const { stdout } = await execa('cat', [join(dir, 'env.txt')]);
    expect(stdout).not.toContain('should-not-leak');
  });

  it('decrypts with the CLI what either engine encrypted, and fails loudly with a key that does not open it', async () => {
    const engine = await findAgeEngine();
    expect(engine.kind).toBe('cli');
    if (engine.kind !== 'cli') return;
    const sealed = collector();
    await pipeline(Readable.from([data]), await createEncryptStream([keys[0]?.recipient as string], { kind: 'library' }), sealed.stream);
    // As restore-pitr's unpack runs it (postgres/pitr/unpack-base.ts): age -d -i <identity file>.
    const opened = await execa(engine.path, ['-d', '-i', keys[0]?.file as string], { input: sealed.bytes(), encoding: 'buffer' });
    expect(Buffer.from(opened.stdout).equals(data)).toBe(true);
    const refused = await execa(engine.path, ['-d', '-i', keys[1]?.file as string], { input: sealed.bytes(), reject: false });
    expect(refused.exitCode).toBe(1);
    expect(refused.stderr).toMatch(/no identity matched any of the recipients/);
  });
});
