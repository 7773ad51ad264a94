import { copyFile, mkdir, mkdtemp, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * `npm start` runs bin/pg-backup-bot.js without building first: the build made by `npm ci` runs, unless the
 * checkout's sources are newer than it (a `git pull` without a build), when the sources run instead and a line
 * says so. Tried on a checkout of its own: the real bin script, a build and sources that say which one ran.
 */
describe('bin/pg-backup-bot.js picks the build, or the sources when the build is older', () => {
  let dir: string;
  const run = () => execa('node', [join(dir, 'bin', 'pg-backup-bot.js')], { reject: false });
  const at = (seconds: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, seconds));

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pgbb-bin-'));
    await mkdir(join(dir, 'bin'));
    await mkdir(join(dir, 'dist', 'bundle'), { recursive: true });
    await mkdir(join(dir, 'src', 'cli'), { recursive: true });
    await copyFile(resolve('bin/pg-backup-bot.js'), join(dir, 'bin', 'pg-backup-bot.js'));
    await symlink(resolve('node_modules'), join(dir, 'node_modules'));
    await writeFile(join(dir, 'package.json'), '{"type":"module"}\n');
    await writeFile(join(dir, 'dist', 'bundle', 'main.js'), "console.log('the build ran');\n");
    await writeFile(join(dir, 'src', 'main.ts'), "const said: string = 'the sources ran';\nconsole.log(said);\n");
    await writeFile(join(dir, 'src', 'cli', 'verb.ts'), 'export {};\n');
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('runs the build when it is newer than every source file', async () => {
    for (const f of ['src/main.ts', 'src/cli/verb.ts']) await utimes(join(dir, f), at(1), at(1));
    await utimes(join(dir, 'dist/bundle/main.js'), at(2), at(2));
    const r = await run();
    expect(r.stdout).toBe('the build ran');
    expect(r.stderr).toBe('');
  });

  it('runs the sources, and says why, when one source file is newer than the build', async () => {
    await utimes(join(dir, 'src/cli/verb.ts'), at(3), at(3));
    const r = await run();
    expect(r.stdout).toBe('the sources ran');
    expect(r.stderr).toBe('pg-backup-bot: the build is older than src/ (run `npm run build`); running the sources instead.');
  });

  it('says so, and exits 1, when an installed package has neither a build nor sources', async () => {
    await rm(join(dir, 'dist'), { recursive: true });
    await rm(join(dir, 'src'), { recursive: true });
    const r = await run();
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^pg-backup-bot: this installation has neither its build \(dist\/\) nor its sources \(src\/\)/);
  });
});
