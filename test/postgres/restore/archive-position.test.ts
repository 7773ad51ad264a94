import { mkdtemp, realpath, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { furthestOffset } from '../../../src/postgres/restore/archive-position.ts';

describe('how far a process tree has read into a file (/proc)', () => {
  let dir: string;
  let file: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pgbb-pos-'));
    file = join(await realpath(dir), 'archive');
    await writeFile(file, Buffer.alloc(64 * 1024, 7));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  // A descriptor opened by a child of the process asked about, read 5,000 then 20,000 bytes in by two readers,
  // as pg_restore's -j workers each reopen the archive and seek to their block.
  it('takes the largest offset among the descriptors of the process and its children', async () => {
    const script = (n: number) => `exec 3<"$1"; head -c ${n} <&3 >/dev/null; echo ready; sleep 30`;
    const parent = execa('sh', ['-c', `sh -c '${script(5000)}' x "$1" & sh -c '${script(20000)}' x "$1" & wait`, 'x', file], {
      stdout: 'pipe',
      detached: true,
    });
    try {
      await new Promise<void>((resolve) => {
        let out = '';
        parent.stdout?.on('data', (b: Buffer) => {
          out += b.toString();
          if (out.split('ready').length === 3) resolve();
        });
      });
      expect(await furthestOffset(parent.pid as number, file)).toBe(20000);
      expect(await furthestOffset(parent.pid as number, join(dir, 'other'))).toBe(0);
    } finally {
      process.kill(-(parent.pid as number), 'SIGKILL'); // the whole group: the sleeps hold stdout open
      await parent.catch(() => undefined);
    }
  });

  it('answers 0 for a process that is gone', async () => {
    const done = execa('true');
    const pid = done.pid as number;
    await done;
    expect(await furthestOffset(pid, file)).toBe(0);
  });
});
