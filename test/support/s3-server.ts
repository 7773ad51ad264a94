import { afterAll, beforeAll } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import type { Server } from 'node:http';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { createLogger } from '../../src/logger.ts';
import { S3Storage, type S3StorageOptions } from '../../src/storage/s3-storage.ts';

/** The part of s3rver 3.7 these tests use; it ships no types, and a `.d.ts` for it is not worth a global file. */
interface S3rverInstance {
  run(): Promise<{ address: string; port: number }>;
  close(): Promise<void>;
  httpServer?: Server;
  on(event: 'event', listener: (e: { Records: Array<{ eventName: string; s3: { object: { key: string } } }> }) => void): void;
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

/** The environment a bot or CLI process needs for an S3 copy (`S3_MODE=copy`) in this server's bucket under `prefix`. */
export const s3CopyEnv = (server: Pick<TestS3Server, 'endpoint'>, bucket: string, prefix: string) => ({
  S3_BUCKET: bucket,
  S3_MODE: 'copy',
  S3_ENDPOINT: server.endpoint,
  S3_FORCE_PATH_STYLE: 'true',
  S3_PREFIX: prefix,
  // s3rver checks no signatures; the SDK's default chain reads these.
  AWS_ACCESS_KEY_ID: TEST_CREDENTIALS.accessKeyId,
  AWS_SECRET_ACCESS_KEY: TEST_CREDENTIALS.secretAccessKey,
});

export interface TestS3Server {
  endpoint: string;
  bucket: string;
  /** Stops the server (open keep-alive sockets included) and removes its files. */
  close(): Promise<void>;
  /** Stops answering without removing the objects, to simulate an outage; `restart()` brings it back. */
  stop(): Promise<void>;
  restart(): Promise<void>;
  /** Object writes and deletes in the order the server saw them, e.g. `ObjectRemoved:Delete pgbb/app/…`. */
  events: string[];
  /** Every request as `METHOD /bucket/key?query`, to see what the client asked for (e.g. AbortMultipartUpload). */
  requests: string[];
  /** Resolves with the first request (past or future) that matches, e.g. to stop the server mid-upload. */
  waitForRequest(pattern: RegExp): Promise<string>;
}

/** A local S3-compatible server on a free port of 127.0.0.1 with one empty bucket, its objects in a temp dir. */
export async function startS3Server(bucket = 'pgbb-test'): Promise<TestS3Server> {
  const directory = await mkdtemp(join(tmpdir(), 'pgbb-s3-'));
  const events: string[] = [];
  const requests: string[] = [];
  const waiters: Array<{ pattern: RegExp; resolve: (r: string) => void }> = [];
  const record = (r: string) => {
    requests.push(r);
    for (const w of waiters.filter((x) => x.pattern.test(r))) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve(r);
    }
  };
  const launch = async (port: number) => {
    // S3RVER_LOG=1 shows the server's own log (its internal errors never reach the client's message).
    const server = new S3rver({ address: '127.0.0.1', port, directory, silent: !process.env.S3RVER_LOG, configureBuckets: [{ name: bucket }] });
    server.on('event', (e) => {
      for (const r of e.Records) events.push(`${r.eventName} ${r.s3.object.key}`);
    });
    const address = await server.run();
    server.httpServer?.prependListener('request', (req: { method?: string; url?: string }) => record(`${req.method} ${req.url}`));
    return { server, port: address.port };
  };
  let { server, port } = await launch(0);
  let running = true;
  const stop = async () => {
    if (!running) return;
    running = false;
    const closing = server.close();
    // The SDK keeps sockets alive; without this close() waits for them to time out.
    server.httpServer?.closeAllConnections();
    await closing;
  };
  return {
    endpoint: `http://127.0.0.1:${port}`,
    bucket,
    events,
    requests,
    waitForRequest(pattern) {
      const seen = requests.find((r) => pattern.test(r));
      return seen !== undefined ? Promise.resolve(seen) : new Promise((resolve) => waiters.push({ pattern, resolve }));
    },
    stop,
    async restart() {
      if (running) return;
      ({ server } = await launch(port));
      running = true;
    },
    async close() {
      await stop();
      await rm(directory, { recursive: true, force: true });
    },
  };
}

/** An S3Storage on the test server: path-style addressing, dummy credentials given to the client, never env. */
export function testS3Storage(server: TestS3Server, options: Partial<S3StorageOptions> = {}): S3Storage {
  return new S3Storage({
    bucket: server.bucket,
    prefix: 'pgbb',
    region: 'us-east-1',
    endpoint: server.endpoint,
    forcePathStyle: true,
    credentials: TEST_CREDENTIALS,
    log: createLogger({ level: 'silent' }),
    ...options,
  });
}

/** Raw access to the bucket, to look behind S3Storage's back (what keys exist) or to damage objects. */
export function rawBucket(server: TestS3Server) {
  const client = new S3Client({
    region: 'us-east-1',
    endpoint: server.endpoint,
    forcePathStyle: true,
    credentials: TEST_CREDENTIALS,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  const Bucket = server.bucket;
  return {
    async keys(prefix = ''): Promise<string[]> {
      const out: string[] = [];
      let token: string | undefined;
      do {
        const page = await client.send(new ListObjectsV2Command({ Bucket, Prefix: prefix, ...(token ? { ContinuationToken: token } : {}) }));
        out.push(...(page.Contents ?? []).map((o) => o.Key ?? ''));
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
      return out.sort();
    },
    async get(key: string): Promise<Buffer> {
      const res = await client.send(new GetObjectCommand({ Bucket, Key: key }));
      return Buffer.from(await res.Body!.transformToByteArray());
    },
    /** ETag of an object: a multipart upload's ends in `-<parts>`. */
    etag: (key: string) => client.send(new HeadObjectCommand({ Bucket, Key: key })).then((h) => h.ETag ?? ''),
    put: (key: string, body: string | Buffer) => client.send(new PutObjectCommand({ Bucket, Key: key, Body: body })).then(() => undefined),
    delete: (key: string) => client.send(new DeleteObjectCommand({ Bucket, Key: key })).then(() => undefined),
    destroy: () => client.destroy(),
  };
}

export type RawBucket = ReturnType<typeof rawBucket>;

/**
 * One S3 server for the calling file (or describe block): started before its tests, closed after them; `use`
 * receives the server and raw access to its bucket.
 */
export function useS3Server(use: (server: TestS3Server, raw: RawBucket) => void): void {
  let server: TestS3Server | undefined;
  let raw: RawBucket | undefined;
  beforeAll(async () => {
    server = await startS3Server();
    raw = rawBucket(server);
    use(server, raw);
  });
  afterAll(async () => {
    raw?.destroy();
    await server?.close();
  });
}
