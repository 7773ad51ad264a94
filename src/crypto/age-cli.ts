import { Duplex, PassThrough, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { execa } from 'execa';
import { BotError } from '../errors.ts';

/**
 * Which implementation encrypts: the `age` CLI (Go, the reference implementation) when it is installed, else
 * age-encryption in this process. Both write the same age v1 format, and either decrypts it. Why two: the
 * library's pure-JS ChaCha20-Poly1305 runs at about 95 MB/s on the Node thread, which made a backup of a 527 MB
 * database (123 MB compressed, 2 cores, cold caches) about 30–40 % slower; the CLI encrypts 123 MB in under
 * 0.1 s of CPU, and chained by file descriptor after zstd (postgres/backup/tool-chain.ts) it costs a few percent. Encryption
 * needs public keys only, so no secret ever reaches the CLI.
 */
export type AgeEngine = { kind: 'cli'; path: string } | { kind: 'library' };

async function probe(path: string): Promise<boolean> {
  const r = await execa(path, ['--version'], { reject: false, stdin: 'ignore', timeout: 10_000, env: { PATH: process.env.PATH ?? '' }, extendEnv: false });
  return !r.failed && /^v?1\./.test(String(r.stdout).trim());
}

let detected: Promise<AgeEngine> | undefined;

/**
 * `agePath`: undefined looks for `age` on PATH once per process (library when absent); a path must work (a
 * configured tool that is missing is an error, not a silent slowdown); null always uses the library.
 */
export async function findAgeEngine(agePath?: string | null): Promise<AgeEngine> {
  if (agePath === null) return { kind: 'library' };
  if (agePath !== undefined) {
    if (await probe(agePath)) return { kind: 'cli', path: agePath };
    throw new BotError(
      'pg_tool_missing',
      `The age CLI at ${agePath} does not run (age 1.x expected); install age (Debian package age) or leave the path unset.`,
    );
  }
  detected ??= probe('age').then((ok): AgeEngine => (ok ? { kind: 'cli', path: 'age' } : { kind: 'library' }));
  return detected;
}

/**
 * `age -r <recipient>…` as a Duplex, for a caller that holds a Node stream (backups chain the CLI by file
 * descriptor instead, so their bytes never cross Node twice). Its output ends only once age has exited 0: age that fails
 * (after writing nothing, or half a file) errors the stream instead of ending it, so a short artifact is never
 * taken for a whole one.
 */
export function cliEncryptStream(path: string, recipients: readonly string[]): Duplex {
  return cliAgeStream(
    path,
    recipients.flatMap((r) => ['-r', r]),
  );
}

function cliAgeStream(path: string, args: string[]): Duplex {
  const child = execa(path, args, {
    stdin: 'pipe',
    stdout: 'pipe',
    stderr: 'pipe',
    buffer: false,
    reject: false,
    // Nothing of the bot's environment (tokens, URLs) is the child's business.
    env: { PATH: process.env.PATH ?? '' },
    extendEnv: false,
  });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-2000)));
  const guard = new Transform({
    transform(chunk: Buffer, _enc, done) {
      done(null, chunk);
    },
    flush(done) {
      void child.then((r) => {
        if (!r.failed) return done();
        done(new Error(`age failed (${ageExit(r)}): ${firstLine(stderr)}`));
      });
    },
  });
  void pipeline(child.stdout, guard).catch(() => undefined);
  // age that gives up early (a key that does not open the file) closes its stdin: the write fails with EPIPE, which
  // would hide age's own reason. The reason comes through the readable side (flush above) instead.
  const input = new PassThrough();
  input.pipe(child.stdin);
  child.stdin.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') input.unpipe(child.stdin).resume();
    else input.destroy(err);
  });
  const duplex = Duplex.from({ writable: input, readable: guard });
  // Whatever ends the duplex early (the pipe broke elsewhere) must not leave age running.
  duplex.once('close', () => {
    if (child.exitCode === null) child.kill('SIGTERM');
  });
  return duplex;
}

interface AgeRun {
  stderr: unknown;
  signal?: string | undefined;
  exitCode?: number | undefined;
  originalMessage?: string | undefined;
}

const lines = (text: unknown) =>
  String(text)
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
/** age's own error line (`age: error: …`), else its first line: a warning printed before it is not the reason. */
const firstLine = (text: unknown) => {
  const all = lines(text);
  return all.find((l) => /\berror:|\bfailed\b/i.test(l)) ?? all[0] ?? '';
};
const ageExit = (r: Omit<AgeRun, 'stderr'>) =>
  r.signal ? `killed by ${r.signal}` : r.exitCode !== undefined ? `exit code ${r.exitCode}` : r.originalMessage || 'it did not start';

/**
 * Why `age -d -i FILE` failed, for the one who runs it: a key that opens nothing is named as the thing to look at
 * (the variable that names the identity file, and the file), anything else in age's own words.
 */
export function ageCliFailed(what: string, r: AgeRun, identityFile: string, identityVar: string): BotError {
  const said = firstLine(r.stderr);
  if (/no identity matched/i.test(String(r.stderr)))
    return new BotError('decryption_failed', `${what} is encrypted for another key: ${identityVar} (${identityFile}) does not match any of its recipients.`);
  return new BotError('decryption_failed', `${what} does not decrypt: ${said || ageExit(r)}.`);
}
