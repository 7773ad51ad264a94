import type { TestProject } from 'vitest/node';
import { startEphemeralPostgres, startEphemeralRedis } from '../../src/dev/ephemeral.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    pgUrl: string;
    redisUrl: string;
  }
}

/**
 * One throwaway PostgreSQL and Redis for the whole run (about 1 s to start), unless TEST_DATABASE_URL /
 * TEST_REDIS_URL name existing ones. Tests never depend on the machine's own services.
 */
export default async function setup(project: TestProject) {
  const stops: Array<() => Promise<void>> = [];
  let pgUrl = process.env.TEST_DATABASE_URL;
  if (!pgUrl) {
    const pg = await startEphemeralPostgres();
    stops.push(pg.stop);
    pgUrl = pg.url;
  }
  let redisUrl = process.env.TEST_REDIS_URL;
  if (!redisUrl) {
    const redis = await startEphemeralRedis();
    stops.push(redis.stop);
    redisUrl = redis.url;
  }
  project.provide('pgUrl', pgUrl);
  project.provide('redisUrl', redisUrl);
  return async () => {
    for (const stop of stops.reverse()) await stop();
  };
}
