import { createHash } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { BotError } from '../../src/errors.ts';
import { streamVerified } from '../../src/storage/verified-stream.ts';

const body = Buffer.from('the bytes that were stored\n'.repeat(1000));
const recorded = { bytes: body.length, sha256: createHash('sha256').update(body).digest('hex') };
const mismatch = (what: string) => new BotError('storage_failed', `the copy ${what}`);

/** Runs streamVerified into a sink and returns what reached it, or the error. */
async function copy(source: Buffer, expected = recorded) {
  const sink = new PassThrough();
  const received: Buffer[] = [];
  sink.on('data', (c: Buffer) => received.push(c));
  const result = await streamVerified(Readable.from([source.subarray(0, 4096), source.subarray(4096)]), sink, expected, 'the manifest records', mismatch).then(
    () => null,
    (err: unknown) => err,
  );
  return { error: result, bytes: Buffer.concat(received).length };
}

describe('streamVerified', () => {
  it('passes the exact bytes recorded through', async () => {
    expect(await copy(body)).toEqual({ error: null, bytes: body.length });
  });

  it('fails a source longer than recorded as soon as it is, before sending the rest', async () => {
    const { error, bytes } = await copy(Buffer.concat([body, Buffer.from('more')]));
    expect(String(error)).toContain(`the copy has more than the ${body.length} bytes the manifest records`);
    expect(bytes).toBeLessThanOrEqual(body.length);
  });

  it('fails a source shorter than recorded, or with other bytes of the same size', async () => {
    expect(String((await copy(body.subarray(0, 100))).error)).toContain(`the copy has 100 bytes, not the ${body.length} the manifest records`);
    const changed = Buffer.from(body);
    changed[5000] = 0x21;
    expect(String((await copy(changed)).error)).toMatch(/the copy has sha256 [0-9a-f]{12}…, not [0-9a-f]{12}… as the manifest records/);
  });
});
