import { describe, expect, it } from 'vitest';
import { newRecordId } from '../../src/storage/index.ts';

// Writing and listing records is part of the Storage contract (storage-contract.ts), run for every backend.
describe('restore record ids', () => {
  it('makes ids that sort by time', () => {
    const a = newRecordId(new Date('2026-01-01T00:00:00.001Z'));
    const b = newRecordId(new Date('2026-01-01T00:00:00.002Z'));
    expect(a).toMatch(/^20260101T000000001Z-[0-9a-f]{6}$/);
    expect(a < b).toBe(true);
  });
});
