import { defaultTarget } from '../../src/config.ts';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { BOT_TOKEN, ROUTING_KEY, SIGNING_SECRET, jobIdOf, slash, startHarness, type Harness } from './harness.ts';

const DB_PASSWORD = 'Pw-9f3c1e-do-not-leak';
let h: Harness;

/** Every command line on the machine, sampled every 10 ms while `work` runs (children live only briefly). */
async function sampleArgv(work: () => Promise<void>): Promise<Set<string>> {
  const seen = new Set<string>();
  let done = false;
  const sampler = (async () => {
    while (!done) {
      // All at once: one pass must be shorter than a small dump's life, even on a busy machine.
      const pids = (await readdir('/proc').catch(() => [] as string[])).filter((p) => /^\d+$/.test(p));
      const cmds = await Promise.all(pids.map((pid) => readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')));
      for (const cmd of cmds) if (cmd) seen.add(cmd.replace(/\0/g, ' '));
      await new Promise((r) => setTimeout(r, 10));
    }
  })();
  try {
    await work();
  } finally {
    done = true;
    await sampler;
  }
  return seen;
}

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await filesUnder(p)));
    else if (e.name.endsWith('.json') || e.name.endsWith('.jsonl')) out.push(p);
  }
  return out;
}

beforeAll(async () => {
  h = await startHarness({ pgUrl: inject('pgUrl'), redisUrl: inject('redisUrl'), env: { LOG_LEVEL: 'trace' } });
});

afterAll(async () => {
  await h?.stop();
});

describe('secrets hygiene', () => {
  it('keeps passwords, tokens, routing keys and age identities out of argv, logs, Slack messages and manifests', async () => {
    // The test server trusts local connections, so a password in the URL is accepted and ignored by the server —
    // but every tool still receives it (through a passfile), which is what this checks.
    const url = new URL(h.source.url);
    url.username = 'postgres';
    url.password = DB_PASSWORD;
    h.config.targets[0] = { ...(h.config.targets[0] ?? defaultTarget('shop', '')), url: url.toString() };

    const argv = await sampleArgv(async () => {
      const backup = jobIdOf((await slash(h, '/backup', 'now')).text) ?? '';
      await h.slack.waitFor((c) => c.method === 'chat.update' && JSON.stringify(c.body).includes(backup) && /succeeded/.test(String(c.body.text)), 60_000);
      const test = jobIdOf((await slash(h, '/restore-test', 'latest')).text) ?? '';
      await h.slack.waitFor((c) => c.method === 'chat.update' && JSON.stringify(c.body).includes(test) && /passed/.test(String(c.body.text)), 60_000);
    });
    const dumps = [...argv].filter((c) => /pg_dump|pg_restore|zstd/.test(c));
    expect(dumps.length, 'the sampler saw pg_dump, pg_restore or zstd run').toBeGreaterThan(0);

    const identity = h.config.encryption.identityFile
      ? ((await readFile(h.config.encryption.identityFile, 'utf8')).match(/AGE-SECRET-KEY-1[0-9A-Z]+/g) ?? [])
      : [];
    const secrets = [DB_PASSWORD, BOT_TOKEN, SIGNING_SECRET, ROUTING_KEY, ...identity];
    const stored = await Promise.all((await filesUnder(h.backupDir)).map((f) => readFile(f, 'utf8')));
    const logs = h.logs.join('');
    const places: Record<string, string> = {
      argv: [...argv].join('\n'),
      logs,
      slack: JSON.stringify(h.slack.calls.map((c) => c.body)),
      'manifests and records': stored.join('\n'),
    };
    expect(h.service.deps.log.level).toBe('trace'); // the most talkative level really was on
    expect(logs).toMatch(/"level":20/);
    for (const [where, text] of Object.entries(places)) {
      for (const secret of secrets) expect(text.includes(secret), `${where} contains a secret`).toBe(false);
    }
  }, 120_000);
});
