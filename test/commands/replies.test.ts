import { randomUUID } from 'node:crypto';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { formatQueueStatus, kindLabel } from '../../src/commands/replies.ts';
import type { BackupJobData } from '../../src/jobs/queues.ts';

describe('kindLabel (the kind column of /backup list)', () => {
  it('tells scheduled classes apart and shows a pre-migration backup’s ticket', () => {
    expect(kindLabel({ kind: 'scheduled', retentionClass: 'frequent', label: null })).toBe('scheduled (frequent)');
    expect(kindLabel({ kind: 'scheduled', retentionClass: 'daily', label: null })).toBe('scheduled (daily)');
    expect(kindLabel({ kind: 'pre-migration', retentionClass: 'pre-migration', label: 'JIRA-1234' })).toBe('pre-migration JIRA-1234');
    expect(kindLabel({ kind: 'manual', retentionClass: 'manual', label: null })).toBe('manual');
    expect(kindLabel({ kind: 'pre-migration', retentionClass: 'pre-migration', label: '<!here>' })).toBe('pre-migration &lt;!here&gt;');
  });
});

describe('formatQueueStatus', () => {
  let redis: Redis;
  let queue: Queue<BackupJobData>;
  beforeAll(() => {
    redis = new Redis(inject('redisUrl'), { maxRetriesPerRequest: null });
    queue = new Queue<BackupJobData>('backup', { connection: redis, prefix: `{replies-${randomUUID().slice(0, 8)}}` });
  });
  afterAll(async () => {
    await queue.obliterate({ force: true });
    await queue.close();
    await redis.quit();
  });

  it('names the migration of a waiting pre-migration backup and the schedule of a scheduled one', async () => {
    const slack = { source: 'slack' as const, userId: 'U0ANA' };
    await queue.add('backup', { target: 'shop', kind: 'pre-migration', label: 'JIRA-1234', requestedBy: slack }, { jobId: 'backup-shop-1' });
    await queue.add(
      'backup',
      { target: 'shop', kind: 'scheduled', label: null, requestedBy: { source: 'schedule' }, schedule: { id: 'daily', retentionClass: 'daily', keepDays: 30 } },
      { jobId: 'backup-shop-2' },
    );
    const text = await formatQueueStatus(queue);
    expect(text).toMatch(/• `backup-shop-1` · shop · pre-migration JIRA-1234 · by <@U0ANA> · since /);
    expect(text).toMatch(/• `backup-shop-2` · shop · scheduled by `daily` · by schedule · since /);
  });
});
