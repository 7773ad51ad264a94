import { readFile } from 'node:fs/promises';
import { Duplex, Readable } from 'node:stream';
import { inspect } from 'node:util';
import { Decrypter, Encrypter, generateIdentity, identityToRecipient } from 'age-encryption';
import { BotError } from '../errors.ts';
import { cliEncryptStream, type AgeEngine } from './age-cli.ts';

/**
 * Encryption at rest with age (https://age-encryption.org): X25519 recipients, ChaCha20-Poly1305 in 64 KiB
 * authenticated chunks. The age-encryption library reads keys and decrypts; it encrypts too when the age CLI is
 * not installed (age-cli.ts says why the CLI is preferred). Files interoperate with the `age` CLI both ways.
 * Backups are encrypted to public keys only, so the workers that take them hold no secret; restores read an
 * identity file.
 *
 * Library error messages about keys are never passed on: bech32 decoding errors quote the string they choke on,
 * and that string may be a secret key.
 */

export const AGE_SUFFIX = '.age';
export const IDENTITY_VAR = 'BACKUP_ENCRYPTION_IDENTITY_FILE';

/**
 * Secret keys read from an identity file. The keys sit in a private field: a logger, JSON.stringify or
 * util.inspect of this object shows the file name only.
 */
export class AgeIdentity {
  readonly #keys: readonly string[];
  /** The file the keys came from, for messages. */
  readonly file: string;
  /** The identity file a tool may read (the age CLI's `-i`); undefined for a key held in memory only. */
  readonly path: string | undefined;

  constructor(keys: readonly string[], file: string, path?: string) {
    this.#keys = keys;
    this.file = file;
    this.path = path;
  }

  /** The public keys of its keys (age1…), those the library can derive. */
  async recipients(): Promise<string[]> {
    const all = await Promise.all(this.#keys.map((k) => identityToRecipient(k).catch(() => null)));
    return all.filter((r): r is string => r !== null);
  }

  decrypter(): Decrypter {
    const d = new Decrypter();
    for (const k of this.#keys) d.addIdentity(k);
    return d;
  }

  toJSON(): string {
    return `[age identity from ${this.file}]`;
  }

  [inspect.custom](): string {
    return this.toJSON();
  }
}

/** Recipients the library cannot use fail the backup before anything is dumped, not halfway through. */
export function checkRecipients(recipients: readonly string[]): void {
  if (recipients.length === 0) throw new BotError('config_invalid', 'Encryption needs at least one age public key (age1…) in BACKUP_ENCRYPTION_RECIPIENT.');
  recipients.forEach((r, i) => {
    try {
      new Encrypter().addRecipient(r);
    } catch (err) {
      // The right shape with a wrong checksum is a character changed or mistyped (QA: blamed on the length).
      const why = /checksum/i.test(err instanceof Error ? err.message : '')
        ? 'its checksum does not match: a character was changed or mistyped; copy it again from `age-keygen -y key.txt`'
        : 'it is not an age public key (age1…, 62 characters)';
      throw new BotError('config_invalid', `BACKUP_ENCRYPTION_RECIPIENT: key ${i + 1} is not valid: ${why}.`);
    }
  });
}

/**
 * Parses an identity file as the age CLI writes it (`age-keygen -o key.txt`): one `AGE-SECRET-KEY-1…` per line,
 * `#` comments and blank lines allowed. A problem names the variable, the file and the line, never the line's text.
 */
export async function loadIdentity(file: string | undefined, why: string): Promise<AgeIdentity> {
  if (!file) {
    throw new BotError(
      'decryption_failed',
      `${why}, but ${IDENTITY_VAR} is not set: point it at the age identity file (AGE-SECRET-KEY-1…) of one of its recipients.`,
    );
  }
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    // In words first (QA: "cannot be read (ENOENT)" alone), the code kept for searching.
    const said =
      code === 'ENOENT' ? 'does not exist' : code === 'EACCES' ? 'may not be read by this user' : code === 'EISDIR' ? 'is a directory' : 'cannot be read';
    throw new BotError('decryption_failed', `${IDENTITY_VAR} (${file}) ${said} (${code}); ${why.charAt(0).toLowerCase()}${why.slice(1)}.`);
  }
  const keys: string[] = [];
  const lines = text.split(/\r?\n/);
  for (const [i, raw] of lines.entries()) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    try {
      if (!/^AGE-SECRET-KEY-(PQ-)?1[0-9A-Z]+$/.test(line)) throw new Error('not an identity');
      new Decrypter().addIdentity(line);
      keys.push(line);
    } catch {
      throw new BotError(
        'decryption_failed',
        `${IDENTITY_VAR} (${file}), line ${i + 1}, is not an age identity: the file must hold AGE-SECRET-KEY-1… lines (and # comments) only.`,
      );
    }
  }
  if (keys.length === 0) throw new BotError('decryption_failed', `${IDENTITY_VAR} (${file}) holds no age identity (AGE-SECRET-KEY-1…).`);
  return new AgeIdentity(keys, file, file);
}

/** A fresh key pair, as `age-keygen` makes one: the file text (comments + secret key) and the public key. */
export async function generateKeyPair(): Promise<{ identityFileText: string; recipient: string }> {
  const identity = await generateIdentity();
  const recipient = await identityToRecipient(identity);
  return { identityFileText: `# created: ${new Date().toISOString()}\n# public key: ${recipient}\n${identity}\n`, recipient };
}

/** A key pair that never leaves this process: the identity is held only in the returned object. */
export async function generateEphemeralKey(purpose: string): Promise<{ identity: AgeIdentity; recipient: string }> {
  const secret = await generateIdentity();
  return { identity: new AgeIdentity([secret], purpose), recipient: await identityToRecipient(secret) };
}

/**
 * A Duplex that encrypts what is written to it to every recipient: pipeline-friendly (`zstd → encrypt → hash`).
 * Memory stays at one 64 KiB chunk plus the stream buffers; back-pressure flows through both web streams. The
 * engine (age-cli.ts) decides who does the work; the recipients are checked by the library either way.
 */
export async function createEncryptStream(recipients: readonly string[], engine: AgeEngine = { kind: 'library' }): Promise<Duplex> {
  checkRecipients(recipients);
  if (engine.kind === 'cli') return cliEncryptStream(engine.path, recipients);
  const e = new Encrypter();
  for (const r of recipients) e.addRecipient(r);
  // An identity TransformStream gives us a writable end to feed and a readable end to hand to the library.
  const plain = new TransformStream<Uint8Array, Uint8Array>();
  const encrypted = await e.encrypt(plain.readable);
  return Duplex.fromWeb({ readable: encrypted, writable: plain.writable });
}

function wrongKey(recipients: readonly string[]): BotError {
  return new BotError(
    'decryption_failed',
    `The backup is encrypted for another key: ${IDENTITY_VAR} does not match any of its recipients (${recipients.join(', ') || 'none recorded'}).`,
  );
}

/**
 * The plaintext of an age file. The header is read and the file key unwrapped before this resolves, so a wrong
 * identity fails here, before any byte is released; a damaged chunk fails the stream at that chunk (each one is
 * authenticated), and a truncated file fails at its end.
 */
export async function createDecryptStream(source: Readable, identity: AgeIdentity, recipients: readonly string[]): Promise<Readable> {
  try {
    const web = Readable.toWeb(source) as unknown as ReadableStream<Uint8Array>;
    const out = await identity.decrypter().decrypt(web);
    return Readable.fromWeb(out as unknown as import('node:stream/web').ReadableStream<Uint8Array>);
  } catch (err) {
    source.destroy();
    throw headerFailure(err, recipients);
  }
}

/** A header the identity cannot open, in one sentence: another key's, or not an age header at all. */
function headerFailure(err: unknown, recipients: readonly string[]): BotError {
  const message = err instanceof Error ? err.message : String(err);
  if (/no identity matched/i.test(message)) return wrongKey(recipients);
  return new BotError('decryption_failed', 'The backup’s age header cannot be read: the artifact is damaged or not an age file.', {
    cause: err,
    detail: `age header: ${message.slice(0, 120)}`,
  });
}

/** More than any age header (a stanza per recipient, post-quantum ones a few KB each): read, then the file let go. */
const HEADER_READ = 1 << 20;

/**
 * Fails with the clear sentence when none of the identities opens the file; reads the header only. The file's first
 * bytes are read and it is closed before the age library sees them as a stream of their own: a file wrapped by
 * Readable.toWeb and destroyed mid-read threw "Invalid state: Controller is already closed" from Node's adapter, an
 * uncaught exception that ended the process (CI: a CLI restore exited at its key check, about once in 700 checks
 * under load).
 */
export async function checkIdentityOpens(source: Readable, identity: AgeIdentity, recipients: readonly string[]): Promise<void> {
  const chunks: Buffer[] = [];
  let read = 0;
  for await (const chunk of source as AsyncIterable<Buffer>) {
    chunks.push(chunk);
    read += chunk.length;
    if (read >= HEADER_READ) break; // the iterator's return destroys the file stream
  }
  const head = Buffer.concat(chunks);
  const web = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(new Uint8Array(head.buffer, head.byteOffset, head.byteLength));
      controller.close();
    },
  });
  try {
    const plain = await identity.decrypter().decrypt(web);
    await plain.cancel().catch(() => undefined);
  } catch (err) {
    throw headerFailure(err, recipients);
  }
}
