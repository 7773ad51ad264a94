import { readdir, readFile } from 'node:fs/promises';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { TOOL_NICENESS, yieldCpu } from '../../src/postgres/child-pipes.ts';

/** Field 19 of /proc/<pid>/stat (or of a thread's, `<pid>/task/<tid>`): its nice value. */
async function niceOf(pid: number | string): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
}

describe('yieldCpu', () => {
  it('runs a tool below the bot’s own priority, and returns the child it was given', async () => {
    const child = execa('sleep', ['5']);
    expect(yieldCpu(child)).toBe(child);
    expect(await niceOf(child.pid as number)).toBe(TOOL_NICENESS);
    expect(await niceOf(process.pid)).toBe(0);
    child.kill();
    await child.catch(() => undefined);
  });

  it('lowers every thread of a multi-threaded tool, including those it started before the call', async () => {
    const zstd = yieldCpu(execa('zstd', ['-T0', '-1', '-c'], { stdin: 'pipe', stdout: 'ignore', stderr: 'ignore', reject: false }));
    for (let i = 0; i < 16; i++) zstd.stdin.write(Buffer.alloc(1 << 20, i));
    await new Promise((r) => setTimeout(r, 200)); // compressing: its workers are up
    const tids = await readdir(`/proc/${zstd.pid}/task`);
    expect(tids.length).toBeGreaterThan(1);
    expect(new Set(await Promise.all(tids.map((t) => niceOf(`${zstd.pid}/task/${t}`))))).toEqual(new Set([TOOL_NICENESS]));
    zstd.stdin.end();
    await zstd;
  });

  it('leaves a child that has already exited alone', async () => {
    const child = execa('true');
    await child;
    expect(() => yieldCpu(child)).not.toThrow();
  });
});
