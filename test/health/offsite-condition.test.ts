import { describe, expect, it } from 'vitest';
import { walOffsiteCondition } from '../../src/health/offsite-condition.ts';

const since = '2026-12-05T10:00:00.000Z';
const at = (minutes: number) => new Date(Date.parse(since) + minutes * 60_000);
const failing = {
  offsiteWhere: 's3://b/pgbb/app',
  offsiteNewest: '000000010000000000000007',
  offsitePending: '3',
  offsiteError: 'connect ECONNREFUSED 127.0.0.1:9000',
  offsiteFailingSince: since,
};

describe('walOffsiteCondition', () => {
  it('is not judged without S3', () => {
    expect(walOffsiteCondition('app', at(0), {})).toBeNull();
  });

  describe('with S3 as the copy (S3_MODE=copy)', () => {
    it('warns once copies have failed for 15 minutes', () => {
      expect(walOffsiteCondition('app', at(14), failing)).toMatchObject({ status: 'ok', severity: 'warning' });
      expect(walOffsiteCondition('app', at(16), failing)).toMatchObject({
        status: 'failing',
        severity: 'warning',
        summary: 'The WAL archive of app is not being copied off-site',
        value: 3,
      });
    });
  });

  describe('with S3 as the primary store (S3_MODE=primary)', () => {
    const primary = { ...failing, offsiteRole: 'primary' };

    it('pages (error) once uploads from the spool have failed for 5 minutes, saying the spool is not archived', () => {
      expect(walOffsiteCondition('app', at(4), primary)).toMatchObject({
        status: 'ok',
        severity: 'error',
        evidence: expect.stringContaining('the last upload failed (connect ECONNREFUSED 127.0.0.1:9000), retrying'),
      });
      expect(walOffsiteCondition('app', at(6), primary)).toMatchObject({
        status: 'failing',
        severity: 'error',
        summary: 'The WAL archive of app is not reaching S3, its primary store',
        evidence: expect.stringContaining(
          "archived in s3://b/pgbb/app (the primary store): newest segment there 000000010000000000000007; 3 segments on the worker's disk, not archived until uploaded",
        ),
        value: 3,
      });
    });

    it('is ok while uploads work, naming the newest segment in the bucket', () => {
      const { offsiteError: _e, offsiteFailingSince: _s, ...healthy } = primary;
      expect(walOffsiteCondition('app', at(60), { ...healthy, offsitePending: '0' })).toMatchObject({
        status: 'ok',
        summary: 'The WAL archive of app reaches S3',
        evidence: 'archived in s3://b/pgbb/app (the primary store): newest segment there 000000010000000000000007',
      });
    });
  });
});
