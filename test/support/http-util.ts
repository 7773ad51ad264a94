import type { IncomingMessage, Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * Small pieces the local Slack and PagerDuty stand-ins share: a recorded list a test can wait on, body
 * reading with a size cap, and listen/close that never leave a socket behind (fetch keeps connections alive,
 * so a plain `server.close()` would wait for them and hang the test run).
 */

export interface WatchedList<T> {
  readonly items: T[];
  push(item: T): void;
  /** Resolves with the first item (already recorded or arriving later) that matches; rejects after `timeoutMs`. */
  waitFor(predicate: (item: T) => boolean, timeoutMs?: number): Promise<T>;
}

export function watchedList<T>(what: string): WatchedList<T> {
  const items: T[] = [];
  const waiters = new Set<(item: T) => void>();
  return {
    items,
    push(item) {
      items.push(item);
      for (const w of [...waiters]) w(item);
    },
    waitFor(predicate, timeoutMs = 5_000) {
      const seen = items.find(predicate);
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise<T>((resolve, reject) => {
        const waiter = (item: T) => {
          if (!predicate(item)) return;
          clearTimeout(timer);
          waiters.delete(waiter);
          resolve(item);
        };
        // The message lists what did arrive: a timeout alone says nothing about why the match failed.
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          const tail = items.slice(-5).map((i) => JSON.stringify(i).slice(0, 300));
          reject(new Error(`no matching ${what} within ${timeoutMs} ms; ${items.length} seen, last: ${tail.join('\n') || 'none'}`));
        }, timeoutMs);
        waiters.add(waiter);
      });
    },
  };
}

/** Reads the whole body, or returns null once it passes `limit` bytes (the rest is drained, not buffered). */
export async function readBody(req: IncomingMessage, limit = 10 * 1024 * 1024): Promise<Buffer | null> {
  const chunks: Buffer[] = [];
  let size = 0;
  let tooLarge = false;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) tooLarge = true;
    if (!tooLarge) chunks.push(chunk);
  }
  return tooLarge ? null : Buffer.concat(chunks);
}

export async function listenLocal(server: Server): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  return (server.address() as AddressInfo).port;
}

/** Stops listening, lets requests in flight finish for up to `graceMs`, then cuts whatever is left. */
export async function closeServer(server: Server, graceMs = 500): Promise<void> {
  if (!server.listening) return;
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  const force = setTimeout(() => server.closeAllConnections(), graceMs);
  await closed;
  clearTimeout(force);
}
