import { Redis } from 'ioredis';
import { loadConfig } from '../../../src/config.ts';
import { createLogger } from '../../../src/logger.ts';
import { startWalArchives } from '../../../src/workers/wal-archives.ts';

/**
 * A worker process's WAL archives and nothing else, for the lease test (wal-lease.test.ts): the same
 * startWalArchives a worker runs, on the test's Redis and source, with a short lease. Prints `started` once
 * running; SIGTERM stops it as a worker stops (archive stopped, lease released).
 */
const config = loadConfig(process.env, 'cli');
const redis = new Redis(config.redisUrl, { enableOfflineQueue: false, maxRetriesPerRequest: 1 });
const log = createLogger({ level: 'info' });
const archives = await startWalArchives({ config, redis, log, lease: { ttlMs: 3000, renewMs: 1000, retryMs: 500 } });
process.stdout.write('started\n');
process.on('SIGTERM', () => {
  void archives.stop().then(() => {
    redis.disconnect();
    process.exit(0);
  });
});
