import { execa } from 'execa';
import { freePort, onFreePorts } from '../../src/dev/ephemeral.ts';

/**
 * `pg-backup-bot bot|worker|all` in processes of their own, as a deployer runs them: each configured only through
 * the environment contract, its own METRICS_PORT (and PORT for the bot), its output kept for the test's messages.
 */
export interface BotProcess {
  verb: string;
  child: ReturnType<typeof spawn>;
  /** The bot's Slack endpoint (bot and all only). */
  eventsUrl: string;
  metricsUrl: string;
  output(): string;
  /** SIGKILL to the process group (pg_dump, zstd and all): a host lost, not a shutdown. */
  kill(): void;
  stop(): Promise<void>;
}

const spawn = (verb: string, env: Record<string, string>) =>
  execa('node', ['bin/pg-backup-bot.js', verb], { env, extendEnv: true, reject: false, all: true, buffer: false, detached: true });

export async function startBotProcess(verb: 'bot' | 'worker' | 'all', env: Record<string, string>, timeoutMs = 60_000): Promise<BotProcess> {
  // A port taken before the bot bound it shows as EADDRINUSE in its output, which the error carries.
  return await onFreePorts(
    () => startOnce(verb, env, timeoutMs),
    (err) => err instanceof Error && err.message.includes('EADDRINUSE'),
  );
}

async function startOnce(verb: 'bot' | 'worker' | 'all', env: Record<string, string>, timeoutMs: number): Promise<BotProcess> {
  const [port, metricsPort] = [await freePort(), await freePort()];
  const child = spawn(verb, { ...env, PORT: String(port), METRICS_PORT: String(metricsPort) });
  let out = '';
  child.all?.on('data', (c: Buffer) => {
    out += c.toString();
    if (out.length > 2_000_000) out = out.slice(-1_000_000);
  });
  const metricsUrl = `http://127.0.0.1:${metricsPort}`;
  const end = Date.now() + timeoutMs;
  for (;;) {
    const up = await fetch(`${metricsUrl}/healthz`).then(
      (r) => r.status === 200,
      () => false,
    );
    if (up) break;
    if (Date.now() > end || child.exitCode !== null) {
      if (child.exitCode === null) child.kill('SIGKILL');
      throw new Error(`pg-backup-bot ${verb} did not come up:\n${out.slice(-4000)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const kill = () => {
    if (!child.pid || child.exitCode !== null) return;
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch (err) {
      // The group is gone already (its exit not yet seen here): nothing is left to kill.
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
    }
  };
  return {
    verb,
    child,
    eventsUrl: `http://127.0.0.1:${port}/slack/events`,
    metricsUrl,
    output: () => out,
    kill,
    async stop() {
      if (child.exitCode !== null) return;
      child.kill('SIGTERM');
      const stopped = await Promise.race([child.then(() => true), new Promise<false>((r) => setTimeout(() => r(false), 20_000))]);
      if (!stopped) kill();
      await child;
    },
  };
}

/**
 * A cron pattern (UTC) that fires once in the next minutes: the first whole minute at least `leadMs` away, daily.
 * A test that needs a scheduled job to fire sees it once, and no second round loads the machine after it.
 */
export function nextMinuteCron(leadMs = 20_000, now = Date.now()): { cron: string; at: number } {
  const at = Math.ceil((now + leadMs) / 60_000) * 60_000;
  const d = new Date(at);
  return { cron: `${d.getUTCMinutes()} ${d.getUTCHours()} * * *`, at };
}
