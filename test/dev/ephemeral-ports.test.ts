import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { onFreePorts, portTaken, startEphemeralRedis } from '../../src/dev/ephemeral.ts';

/** A port held by this process, as another process's socket would hold it. */
async function holdPort(): Promise<{ port: number; server: Server }> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  return { port: typeof addr === 'object' && addr ? addr.port : 0, server };
}

describe('throwaway servers on taken ports', () => {
  it('a redis-server whose port is taken fails saying so, which the free-port starts retry on', async () => {
    const held = await holdPort();
    try {
      const err = await startEphemeralRedis({ port: held.port }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(Error);
      expect(portTaken(err)).toBe(true);
      expect(portTaken(new Error('redis-server exited early with code 1: Fatal error loading the DB'))).toBe(false);
    } finally {
      held.server.close();
    }
  });

  it('a cluster bus port taken (the client port + 10000 by default) fails the same way', async () => {
    const held = await holdPort();
    const dir = await mkdtemp(join(tmpdir(), 'pgbb-ports-'));
    try {
      const args = ['--cluster-enabled', 'yes', '--cluster-port', String(held.port), '--cluster-config-file', join(dir, 'nodes.conf'), '--dir', dir];
      const err = await startEphemeralRedis({ args }).catch((e: unknown) => e);
      // With the bus port fixed, each of the three attempts fails on it, and the last one's error is thrown.
      expect(portTaken(err)).toBe(true);
      expect(String(err)).toContain(`127.0.0.1:${held.port}`);
    } finally {
      held.server.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('onFreePorts starts again on a taken port, three tries in all, and never on another failure', async () => {
    const taken = () => new Error('redis-server exited early with code 1: bind: Address already in use');
    let calls = 0;
    expect(await onFreePorts(async () => (++calls < 3 ? Promise.reject(taken()) : 'up'))).toBe('up');
    expect(calls).toBe(3);
    calls = 0;
    const alwaysTaken = async () => {
      calls++;
      throw taken();
    };
    await expect(onFreePorts(alwaysTaken)).rejects.toThrow('Address already in use');
    expect(calls).toBe(3);
    calls = 0;
    const otherFailure = async () => {
      calls++;
      throw new Error('initdb: could not create directory');
    };
    await expect(onFreePorts(otherFailure)).rejects.toThrow('initdb');
    expect(calls).toBe(1);
  });
});
