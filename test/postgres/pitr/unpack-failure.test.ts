import { describe, expect, it } from 'vitest';
import { unpackFailure } from '../../../src/postgres/pitr/unpack-base.ts';

describe('unpackFailure: why a base backup did not unpack, in words', () => {
  it('names a full disk, which tar says only as a short write (QA)', () => {
    const full = unpackFailure(
      'tar: base/1/2691: Wrote only 8192 of 10240 bytes\ntar: Exiting with failure status due to previous errors\n',
      '/restore/data',
      'exit code 2',
    );
    expect(full.code).toBe('disk_full');
    expect(full.userMessage).toBe(
      'The disk under /restore/data filled up while the base backup was unpacked (tar: base/1/2691: Wrote only 8192 of 10240 bytes): free space there or choose another --data-dir.',
    );
    expect(unpackFailure('tar: base/1/1259: Cannot write: No space left on device\n', '/d', 'exit code 2').code).toBe('disk_full');
    const other = unpackFailure('tar: This does not look like a tar archive\n', '/d', 'exit code 2');
    expect(other).toMatchObject({
      code: 'storage_failed',
      userMessage: 'The base backup does not unpack into /d: tar: This does not look like a tar archive.',
    });
  });
});
