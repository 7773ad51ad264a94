import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort, onFreePorts, startEphemeralRedis, type EphemeralRedis } from '../../src/dev/ephemeral.ts';

export interface TestRedisCluster {
  /** The seed nodes as REDIS_URL lists them: `redis://127.0.0.1:p1,redis://127.0.0.1:p2,…`. */
  url: string;
  nodes: EphemeralRedis[];
  stop(): Promise<void>;
}

/**
 * A three-primary Redis Cluster on free ports, made as `redis-cli --cluster create` makes one (each node gets a third
 * of the 16384 slots, then they meet), without needing redis-cli: plain redis-server in cluster mode.
 */
export async function startRedisCluster(primaries = 3): Promise<TestRedisCluster> {
  const dir = await mkdtemp(join(tmpdir(), 'pgbb-redis-cluster-'));
  const nodes: EphemeralRedis[] = [];
  const stop = async () => {
    await Promise.allSettled(nodes.map((n) => n.stop()));
    await rm(dir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < primaries; i++) nodes.push(await startNode(dir, i));
    const clients = nodes.map((n) => new Redis(n.url, { lazyConnect: false }));
    try {
      const per = Math.ceil(16384 / primaries);
      await Promise.all(clients.map((c, i) => c.call('CLUSTER', 'ADDSLOTSRANGE', String(i * per), String(Math.min(16383, (i + 1) * per - 1)))));
      for (const n of nodes.slice(1)) await clients[0]?.call('CLUSTER', 'MEET', '127.0.0.1', String(n.port), String(busPorts.get(n)));
      const end = Date.now() + 30_000;
      for (;;) {
        const infos = await Promise.all(clients.map((c) => c.call('CLUSTER', 'INFO') as Promise<string>));
        if (infos.every((info) => /cluster_state:ok/.test(info) && new RegExp(`cluster_known_nodes:${primaries}\\b`).test(info))) break;
        if (Date.now() > end) throw new Error(`the Redis Cluster did not come up: ${infos.join(' | ')}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    } finally {
      for (const c of clients) c.disconnect();
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { url: nodes.map((n) => n.url).join(','), nodes, stop };
}

/** Each node's cluster bus port. */
const busPorts = new WeakMap<EphemeralRedis, number>();

/**
 * One node, its cluster bus on a free port of its own: by default Redis takes the client port + 10000, which nothing
 * checked was free (CI failed once on it, `bind: Address already in use`). Both ports are chosen here, so a taken
 * bus port gets a new bus port; a failed start's node file is removed before the next.
 */
const startNode = (dir: string, i: number): Promise<EphemeralRedis> =>
  onFreePorts(async () => {
    const bus = await freePort();
    const conf = join(dir, `nodes-${i}.conf`);
    await rm(conf, { force: true });
    const args = ['--cluster-enabled', 'yes', '--cluster-port', String(bus), '--cluster-config-file', conf, '--dir', dir, '--cluster-node-timeout', '2000'];
    const node = await startEphemeralRedis({ port: await freePort(), args });
    busPorts.set(node, bus);
    return node;
  });
