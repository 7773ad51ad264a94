import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { inspect } from 'node:util';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkIdentityOpens, checkRecipients, createDecryptStream, createEncryptStream, generateKeyPair, loadIdentity } from '../../src/crypto/age.ts';
import { BotError } from '../../src/errors.ts';

const collect = () => {
  const chunks: Buffer[] = [];
  return {
    sink: new Writable({
      write(c: Buffer, _e, cb) {
        chunks.push(Buffer.from(c));
        cb();
      },
    }),
    bytes: () => Buffer.concat(chunks),
  };
};

async function encrypt(data: Buffer, recipients: string[]): Promise<Buffer> {
  const out = collect();
  await pipeline(Readable.from([data.subarray(0, 1000), data.subarray(1000)]), await createEncryptStream(recipients), out.sink);
  return out.bytes();
}

describe('age encryption (src/crypto/age.ts)', () => {
  let dir: string;
  let a: { identityFileText: string; recipient: string; file: string };
  let b: { identityFileText: string; recipient: string; file: string };
  // More than one 64 KiB chunk, not a multiple of it: exercises the chunking and the last-chunk flag.
  const data = randomBytes(3 * 64 * 1024 + 777);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pgbb-age-'));
    const mk = async (name: string) => {
      const kp = await generateKeyPair();
      const file = join(dir, name);
      await writeFile(file, kp.identityFileText, { mode: 0o600 });
      return { ...kp, file };
    };
    a = await mk('a.key');
    b = await mk('b.key');
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('encrypts to every recipient; the age CLI decrypts it with either key file', async () => {
    const enc = await encrypt(data, [a.recipient, b.recipient]);
    expect(enc.subarray(0, 22).toString()).toBe('age-encryption.org/v1\n');
    expect(
      enc
        .toString('latin1')
        .split('\n')
        .filter((l) => l.startsWith('-> X25519 ')),
    ).toHaveLength(2);
    const file = join(dir, 'data.age');
    await writeFile(file, enc);
    for (const key of [a.file, b.file]) {
      const { stdout } = await execa('age', ['-d', '-i', key, file], { encoding: 'buffer' });
      expect(Buffer.from(stdout).equals(data)).toBe(true);
    }
  });

  it('decrypts what the age CLI encrypted, with a key file as age-keygen writes it', async () => {
    const keygen = join(dir, 'keygen.key');
    await execa('age-keygen', ['-o', keygen]);
    const recipient = (await execa('age-keygen', ['-y', keygen])).stdout.trim();
    const plain = join(dir, 'plain.bin');
    await writeFile(plain, data);
    await execa('age', ['-r', recipient, '-o', join(dir, 'cli.age'), plain]);
    const identity = await loadIdentity(keygen, 'test');
    const out = collect();
    await pipeline(await createDecryptStream(createReadStream(join(dir, 'cli.age')), identity, [recipient]), out.sink);
    expect(out.bytes().equals(data)).toBe(true);
  });

  it('fails a wrong identity with one clear sentence naming the recipients, never the key', async () => {
    const enc = await encrypt(data, [a.recipient]);
    const wrong = await loadIdentity(b.file, 'test');
    const err = await createDecryptStream(Readable.from([enc]), wrong, [a.recipient]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BotError);
    expect((err as BotError).code).toBe('decryption_failed');
    expect((err as BotError).userMessage).toBe(
      `The backup is encrypted for another key: BACKUP_ENCRYPTION_IDENTITY_FILE does not match any of its recipients (${a.recipient}).`,
    );
    const secret = b.identityFileText.split('\n').find((l) => l.startsWith('AGE-SECRET-KEY-')) ?? 'none';
    expect(JSON.stringify({ err, wrong, msg: (err as Error).message })).not.toContain(secret);
    expect(inspect(wrong)).not.toContain(secret);
  });

  it("checks a file's header alone (checkIdentityOpens): opens with the key, names the other key's, refuses what is not age, and lets the file go", async () => {
    const enc = await encrypt(data, [a.recipient]);
    const file = join(dir, 'check.age');
    await writeFile(file, enc);
    const right = await loadIdentity(a.file, 'test');
    const streams: Array<ReturnType<typeof createReadStream>> = [];
    const open = () => {
      const s = createReadStream(file, { highWaterMark: 16 * 1024 });
      streams.push(s);
      return s;
    };
    await expect(checkIdentityOpens(open(), right, [a.recipient])).resolves.toBeUndefined();
    await expect(checkIdentityOpens(open(), await loadIdentity(b.file, 'test'), [a.recipient])).rejects.toThrow(/encrypted for another key/);
    await expect(checkIdentityOpens(Readable.from([Buffer.from('not an age file\n')]), right, [a.recipient])).rejects.toMatchObject({
      userMessage: 'The backup’s age header cannot be read: the artifact is damaged or not an age file.',
    });
    await new Promise((r) => setImmediate(r));
    expect(streams.map((x) => x.destroyed)).toEqual([true, true]);
  });

  it('fails the stream on a flipped byte, and on a truncated file', async () => {
    const enc = await encrypt(data, [a.recipient]);
    const identity = await loadIdentity(a.file, 'test');
    const flipped = Buffer.from(enc);
    flipped[flipped.length - 70_000] = (flipped[flipped.length - 70_000] ?? 0) ^ 1;
    for (const bad of [flipped, enc.subarray(0, enc.length - 100)]) {
      const plain = await createDecryptStream(Readable.from([bad]), identity, [a.recipient]);
      await expect(pipeline(plain, collect().sink)).rejects.toThrow();
    }
  });

  it('reads key files like the age CLI: comments and blank lines allowed, anything else refused by line number', async () => {
    const secret = a.identityFileText.split('\n').find((l) => l.startsWith('AGE-SECRET-KEY-')) ?? '';
    const commented = join(dir, 'commented.key');
    await writeFile(commented, `# a comment\n\n${secret}\n# another\n`);
    await expect(loadIdentity(commented, 'test')).resolves.toMatchObject({ file: commented });

    const bad = join(dir, 'bad.key');
    await writeFile(bad, `# ok\n${secret.slice(0, -3)}XYZ\n`);
    const err = await loadIdentity(bad, 'test').catch((e: unknown) => e as BotError);
    expect(err).toMatchObject({ code: 'decryption_failed' });
    expect((err as BotError).userMessage).toMatch(/BACKUP_ENCRYPTION_IDENTITY_FILE \(.*bad\.key\), line 2, is not an age identity/);
    expect(JSON.stringify({ m: (err as Error).message, u: (err as BotError).userMessage })).not.toContain(secret.slice(20, 50));

    await expect(loadIdentity(undefined, 'Backup x is encrypted with age')).rejects.toMatchObject({
      userMessage: expect.stringMatching(/^Backup x is encrypted with age, but BACKUP_ENCRYPTION_IDENTITY_FILE is not set/),
    });
    await expect(loadIdentity(join(dir, 'missing.key'), 'test')).rejects.toMatchObject({ userMessage: expect.stringMatching(/does not exist \(ENOENT\)/) });
    const empty = join(dir, 'empty.key');
    await writeFile(empty, '# nothing here\n');
    await expect(loadIdentity(empty, 'test')).rejects.toMatchObject({ userMessage: expect.stringMatching(/holds no age identity/) });
  });

  it('refuses recipients the library cannot use, before anything is written', async () => {
    expect(() => checkRecipients([])).toThrow(BotError);
    // One character changed: the checksum says so, not the length (QA: "62 characters" of a 62-character key).
    expect(() => checkRecipients([a.recipient.slice(0, -1) + (a.recipient.endsWith('q') ? 'p' : 'q')])).toThrow(
      'BACKUP_ENCRYPTION_RECIPIENT: key 1 is not valid: its checksum does not match: a character was changed or mistyped; copy it again from `age-keygen -y key.txt`.',
    );
    expect(() => checkRecipients([a.recipient, 'age1short'])).toThrow(
      'BACKUP_ENCRYPTION_RECIPIENT: key 2 is not valid: it is not an age public key (age1…, 62 characters).',
    );
    await expect(createEncryptStream(['age1nope'])).rejects.toMatchObject({ code: 'config_invalid' });
  });

  it('keeps the key file out of what it writes: the identity file text round-trips through age-keygen -y', async () => {
    const { stdout } = await execa('age-keygen', ['-y', a.file]);
    expect(stdout.trim()).toBe(a.recipient);
    expect(await readFile(a.file, 'utf8')).toMatch(/^# created: .*\n# public key: age1/);
  });
});
