import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import type { Server } from 'node:http';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { finished } from 'node:stream/promises';
import type { Manifest } from '../../src/storage/manifest.ts';
import type { Storage } from '../../src/storage/types.ts';
import { manifestFor } from '../storage/fixtures.ts';

/** The part of s3rver 3.7 these tests use; it ships no types, and a `.d.ts` for it is not worth a global file. */
interface S3rverInstance {
  run(): Promise<{ address: string; port: number }>;
  close(): Promise<void>;
  httpServer?: Server;
}
type S3rverCtor = new (options: {
  address: string;
  port: number;
  directory: string;
  silent: boolean;
  configureBuckets: Array<{ name: string }>;
}) => S3rverInstance;

const S3rver = createRequire(import.meta.url)('s3rver') as S3rverCtor;

/** s3rver checks no signatures: any key pair will do, and none comes from the environment. */
export const TEST_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } as const;

export interface TestS3Server {
  endpoint: string;
  bucket: string;
  /** Stops the server (open keep-alive sockets included) and removes its files. */
  close(): Promise<void>;
  /** Stops answering without removing the files, to simulate an outage. */
  stop(): Promise<void>;
}

/** A local S3-compatible server on a free port of 127.0.0.1 with one empty bucket, its objects in a temp dir. */
export async function startS3Server(bucket = 'pgbb-test'): Promise<TestS3Server> {
  const directory = await mkdtemp(join(tmpdir(), 'pgbb-s3-'));
  const server = new S3rver({ address: '127.0.0.1', port: 0, directory, silent: true, configureBuckets: [{ name: bucket }] });
  const { port } = await server.run();
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    const closing = server.close();
    // The SDK keeps sockets alive; without this close() waits for them to time out.
    server.httpServer?.closeAllConnections();
    await closing;
  };
  return {
    endpoint: `http://127.0.0.1:${port}`,
    bucket,
    stop,
    async close() {
      await stop();
      await rm(directory, { recursive: true, force: true });
    },
  };
}

/** A whole finished backup through any Storage: begin, write + commit one artifact, manifest last. */
export async function storeBackup(storage: Storage, target: string, backupId: string, startedAt: string, body: string | Buffer = `data of ${backupId}`): Promise<Manifest> {
  await storage.beginBackup(target, backupId);
  const w = await storage.createArtifactWriter(target, backupId, 'database.pgdump.zst');
  w.stream.end(body);
  await finished(w.stream);
  await w.commit();
  const m = manifestFor(target, backupId, startedAt, { bytes: Buffer.byteLength(body), sha256: createHash('sha256').update(body).digest('hex') });
  await storage.writeManifest(m);
  return m;
}
