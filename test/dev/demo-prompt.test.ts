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
      // A replacement's confirmation has buttons: the demo shows them, and the label typed is the click (there was
      // no way to confirm one in the demo).
      const id = /Backup id (shop-\d{8}T\d{6}Z)/.exec(text)?.[1];
      expect(id).toBeDefined();
      child.stdin?.write(`/restore ${id} --into=shop\r`);
      await waitFor(
        /\[ Replace shop \] {2}type "Replace shop" to click it \(Slack asks first: Replace shop with backup shop-\S+\?\)\n {2}\[ Cancel \] {2}type "Cancel" to click it\n+you@#incidents> $/,
      );
      child.stdin?.write('Replace shop\r');
      await waitFor(/Confirmed by @UDEMO: replacing shop with shop-\S+ \(restored and verified beside it first\), job \S+/);
      await waitFor(/✅ Restored the whole database from shop-\S+ into shop in .*\n.*• shop now holds the backup, verified/, 90_000);
      // Clicked once: the label is no longer a button.
      child.stdin?.write('Replace shop\r');
      await waitFor(/Unknown command Replace\. Try/);
      child.stdin?.write('exit\r');
      const res = await child;
      expect(res.exitCode).toBe(0);
    } finally {
      if (child.exitCode === null) child.kill('SIGTERM');
      await child.catch(() => undefined);
    }
  }, 120_000);
});
