import { mkdir } from 'node:fs/promises';
import type { Server } from 'node:http';
import { createRequire } from 'node:module';
import { GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';

/**
 * The local S3-compatible server the S3 legs (CS, ES) back up to: s3rver (a devDependency, the one the tests
 * use) in the bench's own process on 127.0.0.1, one bucket, its objects in a directory the leg chooses. A new
 * one per round, started and stopped outside the timing.
 */

/** The part of s3rver 3.7 used here (it ships no types). */
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

/** s3rver checks no signatures: any key pair will do. The CLI gets them as AWS_* in its environment (the SDK's chain). */
export const BENCH_S3_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } as const;

export interface BenchS3 {
  endpoint: string;
  bucket: string;
  /** Every object in the bucket with its size, e.g. `bench/pgbb_bench/<id>/manifest.json`. */
  objects(): Promise<Array<{ key: string; bytes: number }>>;
  /** The whole object, or its first `n` bytes. */
  get(key: string, n?: number): Promise<Buffer>;
  close(): Promise<void>;
}

export function s3rverVersion(): string {
  try {
    return (createRequire(import.meta.url)('s3rver/package.json') as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

export async function startBenchS3(directory: string, bucket = 'pgbb-bench'): Promise<BenchS3> {
  const S3rver = createRequire(import.meta.url)('s3rver') as S3rverCtor;
  await mkdir(directory, { recursive: true });
  const server = new S3rver({ address: '127.0.0.1', port: 0, directory, silent: true, configureBuckets: [{ name: bucket }] });
  const { port } = await server.run();
  const endpoint = `http://127.0.0.1:${port}`;
  const client = new S3Client({
    region: 'us-east-1',
    endpoint,
    forcePathStyle: true,
    credentials: BENCH_S3_CREDENTIALS,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  let closed = false;
  return {
    endpoint,
    bucket,
    async objects() {
      const out: Array<{ key: string; bytes: number }> = [];
      let token: string | undefined;
      do {
        const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, ...(token ? { ContinuationToken: token } : {}) }));
        for (const o of page.Contents ?? []) out.push({ key: o.Key ?? '', bytes: o.Size ?? 0 });
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
      return out;
    },
    async get(key, n) {
      const res = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key, ...(n === undefined ? {} : { Range: `bytes=0-${n - 1}` }) }));
      return Buffer.from(await res.Body!.transformToByteArray());
    },
    async close() {
      if (closed) return;
      closed = true;
      client.destroy();
      const closing = server.close();
      // The SDK clients (ours, a killed CLI's) keep sockets alive; without this close() waits for them to time out.
      server.httpServer?.closeAllConnections();
      await closing;
    },
  };
}
