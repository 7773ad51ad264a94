import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { S3Storage } from '../../src/storage/s3-storage.ts';
import { TEST_CREDENTIALS, startS3Server, type TestS3Server } from '../support/s3-server.ts';
import { jobIdOf, slash, startHarness, type Harness } from './harness.ts';

let h: Harness;
let s3: TestS3Server;

beforeAll(async () => {
  s3 = await startS3Server('pgbb-offsite');
  // The AWS SDK's default credential chain, as in production (s3rver accepts only its own key).
  process.env.AWS_ACCESS_KEY_ID = TEST_CREDENTIALS.accessKeyId;
  process.env.AWS_SECRET_ACCESS_KEY = TEST_CREDENTIALS.secretAccessKey;
  h = await startHarness({
    pgUrl: inject('pgUrl'),
    redisUrl: inject('redisUrl'),
    env: { S3_BUCKET: s3.bucket, S3_ENDPOINT: s3.endpoint, S3_FORCE_PATH_STYLE: 'true', S3_MODE: 'copy', S3_PREFIX: 'pgbb' },
  });
});

afterAll(async () => {
  await h?.stop();
  await s3?.close();
});

describe('off-site copies (S3_MODE=copy)', () => {
  it('copies each finished backup to S3, manifest last, and says so in the thread', async () => {
    const jobId = jobIdOf((await slash(h, '/backup', 'now')).text) ?? '';
    await h.slack.waitFor((c) => c.method === 'chat.postMessage' && /copied to s3:\/\/pgbb-offsite\/pgbb/.test(String(c.body.text)), 60_000);
    const [local] = await h.service.deps.storage.list('shop');
    const remote = new S3Storage({
      bucket: s3.bucket,
      prefix: 'pgbb',
      region: 'us-east-1',
      endpoint: s3.endpoint,
      forcePathStyle: true,
      credentials: TEST_CREDENTIALS,
    });
    const [copied] = await remote.list('shop');
    expect(copied?.backupId).toBe(local?.backupId);
    expect(copied?.artifacts).toEqual(local?.artifacts);
    expect(copied?.jobId).toBe(jobId);
    remote.destroy();
  }, 90_000);
});
