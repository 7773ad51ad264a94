import { execa } from 'execa';
import { describe, expect, it } from 'vitest';

/** What a terminal shows: ANSI sequences and carriage returns resolved as far as a reader of the text cares. */
const shown = (raw: string) =>
  raw
    // biome-ignore lint/suspicious/noControlCharactersInRegex: terminal escape sequences are what is removed here
    .replace(/\x1b\[[0-9;]*[A-Za-z]/g, '')
    .split('\n')
    .map((line) => line.split('\r').filter(Boolean).at(-1) ?? '')
    .join('\n');

/**
 * `npm run demo` at a terminal (a pseudo-terminal from `script`): a typed command appears once (the terminal
 * echoes it; the demo does not print it again), and channel messages that arrive while it waits for input are
 * followed by the prompt again, so the user always sees where to type.
 */
describe('the demo at a terminal', () => {
  it('shows a typed command once, and the prompt again after the messages a job posts', async () => {
    const child = execa('script', ['-qefc', 'node bin/pg-backup-bot.js demo', '/dev/null'], { reject: false, stdin: 'pipe' });
    let out = '';
    child.stdout?.on('data', (c: Buffer) => (out += c.toString()));
    const waitFor = async (pattern: RegExp, timeoutMs = 60_000) => {
      const end = Date.now() + timeoutMs;
      while (!pattern.test(shown(out))) {
        if (Date.now() > end || child.exitCode !== null) throw new Error(`the demo never showed ${pattern}:\n${shown(out)}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    try {
      await waitFor(/you@#incidents> $/);
      child.stdin?.write('/backup now\r');
      await waitFor(/Backup of shop succeeded/);
      // The verdict's thread follows the verdict: wait for it, then for the prompt after it.
      await waitFor(/in thread[\s\S]*└─\n+you@#incidents> $/);
      const text = shown(out);
      expect(text.match(/\/backup now(?! · )/g)).toHaveLength(1);
      expect(text).not.toContain('you> /backup now');
      child.stdin?.write('exit\r');
      const res = await child;
      expect(res.exitCode).toBe(0);
    } finally {
      if (child.exitCode === null) child.kill('SIGTERM');
      await child.catch(() => undefined);
    }
  }, 120_000);
});
