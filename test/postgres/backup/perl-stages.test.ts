import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findPerl } from '../../../src/postgres/backup/perl-stages.ts';
import { ToolPipeError } from '../../../src/postgres/backup/tool-chain.ts';
import { runToolIntoZstd } from '../../../src/postgres/backup/tool-pipe.ts';

/** What zstd wrote, kept to be decompressed and compared with the tool's raw output. */
function collector() {
  const chunks: Buffer[] = [];
  const stream = new Writable({
    write(c: Buffer, _e, cb) {
      chunks.push(c);
      cb();
    },
  });
  return { stream, bytes: () => Buffer.concat(chunks) };
}

const TAIL = 64 * 1024;

/**
 * The raw tap (a base backup's manifest, read from the tar's end on its way to zstd): perl's one process and the
 * coreutils fallback (tee into a named pipe read by tail) keep exactly the last bytes, and hand every byte on.
 */
describe('the raw tap', () => {
  let dir: string;
  let perl: string | null;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pgbb-tap-'));
    perl = await findPerl();
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const run = async (input: Buffer, tap: 'perl' | 'tee', name: string) => {
    const file = join(dir, `${name}.raw`);
    await writeFile(file, input);
    const fifo = tap === 'tee' ? join(dir, `${name}.fifo`) : undefined;
    if (fifo) await execa('mkfifo', ['-m', '0600', '--', fifo]);
    const out = collector();
    const r = await runToolIntoZstd({
      command: 'cat',
      args: ['--', file],
      env: {},
      zstd: 'zstd',
      level: 1,
      destination: out.stream,
      rawTail: { bytes: TAIL, perl: tap === 'perl' ? (perl ?? undefined) : undefined, fifo },
    });
    const back = (await execa('zstd', ['-dc'], { input: out.bytes(), encoding: 'buffer' })).stdout as unknown as Uint8Array;
    return { r, back: Buffer.from(back) };
  };

  it('finds perl on this machine (Debian’s perl-base is essential)', () => {
    expect(perl).toBe('perl');
  });

  it.each(['perl', 'tee'] as const)('%s: keeps the last bytes of a large stream and hands every byte on to zstd', async (tap) => {
    // Random bytes, so a tail from the wrong place cannot match by chance; an odd size, so no read lines up with it.
    const input = randomBytes(5 * 1024 * 1024 + 12_345);
    const { r, back } = await run(input, tap, `large-${tap}`);
    expect(r.rawBytes).toBe(input.length);
    expect(back.equals(input)).toBe(true);
    expect(r.rawTail?.length).toBe(TAIL);
    expect(r.rawTail?.equals(input.subarray(input.length - TAIL))).toBe(true);
  });

  it.each(['perl', 'tee'] as const)('%s: a stream shorter than the tail is kept whole, an empty one as nothing', async (tap) => {
    const input = randomBytes(1000);
    const short = await run(input, tap, `short-${tap}`);
    expect(short.r.rawTail?.equals(input)).toBe(true);
    const empty = await run(Buffer.alloc(0), tap, `empty-${tap}`);
    expect(empty.r.rawTail?.length).toBe(0);
    expect(empty.back.length).toBe(0);
  });

  it.each(['perl', 'tee'] as const)('%s: a compressor that dies is named, not the tap nor the tool it took with it (broken pipes)', async (tap) => {
    // A "zstd" that refuses its arguments at once: the tap and the tool then write into a pipe nobody reads.
    const fifo = tap === 'tee' ? join(dir, 'dies.fifo') : undefined;
    if (fifo) await execa('mkfifo', ['-m', '0600', '--', fifo]);
    const err = await runToolIntoZstd({
      command: 'head',
      args: ['-c', '50000000', '/dev/zero'],
      env: {},
      zstd: 'sh',
      level: 1,
      destination: collector().stream,
      rawTail: { bytes: TAIL, perl: tap === 'perl' ? (perl ?? undefined) : undefined, fifo },
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ToolPipeError);
    expect((err as ToolPipeError).stage).toBe('compressor');
    expect((err as ToolPipeError).message).toMatch(/^zstd failed \(exit code 2\)/);
  });

  it('a tap that cannot start fails the run, named, instead of hanging or storing a stream it never saw', async () => {
    const err = await runToolIntoZstd({
      command: 'head',
      args: ['-c', '1000000', '/dev/zero'],
      env: {},
      zstd: 'zstd',
      level: 1,
      destination: collector().stream,
      rawTail: { bytes: TAIL, perl: join(dir, 'no-such-perl') },
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ToolPipeError);
    expect((err as ToolPipeError).stage).toBe('tool');
    expect((err as ToolPipeError).message).toMatch(/^the raw tap \(perl\) failed \(.*ENOENT/);
  });
});
