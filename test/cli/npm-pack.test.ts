import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { generateKeyPair } from '../../src/crypto/age.ts';
import { loadSampleSchema } from '../e2e/harness.ts';
import { createTestDatabase } from '../support/databases.ts';

/** package-lock.json (lockfileVersion 3): its packages by path, "" the root. */
interface Lock {
  packages: Record<string, Record<string, unknown> & { dev?: boolean; devOptional?: boolean }>;
}
interface RootEntry {
  name?: string;
  version?: string;
  license?: string;
  dependencies?: Record<string, string>;
  bin?: unknown;
  engines?: unknown;
}

/**
 * A package.json and package-lock.json for an empty prefix that depends on the packed tarball, its dependency tree
 * the one this checkout's lockfile pins (dev-only packages left out). `npm install --offline <tgz>` cannot run
 * here: the cache `npm ci` filled holds every tarball but no registry metadata (npm ci never reads it), and a
 * lockfile-less install must resolve the tree from that metadata (ENOTCACHED). With this lockfile `npm ci` needs
 * only the tarballs — and installs exactly the versions the tests ran against.
 */
async function lockForPrefix(prefix: string, tgz: string): Promise<void> {
  const lock = JSON.parse(await readFile('package-lock.json', 'utf8')) as Lock;
  const root = lock.packages[''] as RootEntry | undefined;
  if (!root?.name || !root.version) throw new Error('package-lock.json has no root package');
  const spec = `file:${tgz}`;
  const integrity = `sha512-${createHash('sha512')
    .update(await readFile(join(prefix, tgz)))
    .digest('base64')}`;
  const packages: Lock['packages'] = {
    '': { dependencies: { [root.name]: spec } },
    [`node_modules/${root.name}`]: {
      version: root.version,
      resolved: spec,
      integrity,
      license: root.license,
      dependencies: root.dependencies ?? {},
      bin: root.bin,
      engines: root.engines,
    },
  };
  for (const [path, entry] of Object.entries(lock.packages)) {
    if (path === '' || entry.dev) continue;
    // devOptional: dev for the checkout, optional for a production install.
    const { devOptional, ...rest } = entry;
    packages[path] = devOptional ? { ...rest, optional: true } : rest;
  }
  await writeFile(join(prefix, 'package.json'), `${JSON.stringify({ private: true, dependencies: { [root.name]: spec } }, null, 2)}\n`);
  await writeFile(join(prefix, 'package-lock.json'), `${JSON.stringify({ lockfileVersion: 3, requires: true, packages }, null, 2)}\n`);
}

/** The environment of a host's shell: no npm_* variables of the `npm test` that may be running this file. */
function hostEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? tmpdir() };
  if (process.env.npm_config_cache) env.npm_config_cache = process.env.npm_config_cache;
  return { ...env, ...extra };
}

/**
 * `npm pack` makes a package that installs into an empty prefix, offline, from the npm cache alone, and runs there:
 * the bundled build (dist/bundle) with its external dependencies from the install, no src/, no dev dependencies,
 * no checkout's node_modules anywhere up the path.
 */
describe('the packed package, installed into an empty prefix', () => {
  let dir: string;
  let prefix: string;
  let files: string[] = [];
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  const version = (JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }).version;
  const bin = () => join(prefix, 'node_modules', '.bin', 'pg-backup-bot');
  const run = (args: string[], env: Record<string, string>) => execa(bin(), args, { cwd: dir, env: hostEnv(env), extendEnv: false, reject: false });

  beforeAll(async () => {
    // The build `npm test` made (pretest). Packing with scripts would rebuild dist/bundle under the other test
    // files running bin/pg-backup-bot.js at the same moment; `npm pack` alone builds it first (prepare).
    const bundle = await stat('dist/bundle/main.js').catch(() => null);
    if (!bundle) throw new Error('no build: run `npm run build` first');
    const sources = await readdir('src', { recursive: true, withFileTypes: true });
    const newest = Math.max(...(await Promise.all(sources.filter((e) => e.isFile()).map(async (e) => (await stat(join(e.parentPath, e.name))).mtimeMs))));
    if (newest > bundle.mtimeMs) throw new Error('the build is older than src/: run `npm run build` first (it is what gets packed)');
    dir = await mkdtemp(join(tmpdir(), 'pgbb-pack-'));
    prefix = join(dir, 'prefix');
    const packed = await execa('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { env: hostEnv(), extendEnv: false });
    const [info] = JSON.parse(packed.stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
    if (!info) throw new Error(`npm pack said nothing: ${packed.stderr}`);
    files = info.files.map((f) => f.path);
    await mkdir(prefix);
    await copyFile(join(dir, info.filename), join(prefix, info.filename));
    await lockForPrefix(prefix, info.filename);
    const install = await execa('npm', ['ci', '--offline', '--omit=dev', '--no-audit', '--no-fund'], {
      cwd: prefix,
      env: hostEnv(),
      extendEnv: false,
      reject: false,
    });
    if (install.exitCode !== 0) throw new Error(`npm ci --offline in the prefix failed:\n${install.stderr}`);
    db = await createTestDatabase(inject('pgUrl'), 'pack');
    await loadSampleSchema(db.url);
  }, 120_000);

  afterAll(async () => {
    await db?.drop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('holds the launcher, the bundled build, the docs and deploy files, and no sources, tests or benchmarks', () => {
    // wal-main.js: restore_command's verbs (wal-fetch, wal-prefetch) start from an entry point of their own.
    for (const f of [
      'bin/pg-backup-bot.js',
      'dist/bundle/main.js',
      'dist/bundle/wal-main.js',
      'dist/bundle/package.json',
      'package.json',
      'README.md',
      'manifest.yml',
    ]) {
      expect(files).toContain(f);
    }
    for (const f of ['docs/deploy.md', 'deploy/systemd/pg-backup-bot-worker.service', 'deploy/systemd/pg-backup-bot.env', 'deploy/prometheus/alerts.yml']) {
      expect(files).toContain(f);
    }
    const unwanted = files.filter((f) => /^(src|test|bench|scripts|\.ci)\//.test(f) || /^dist\/(?!bundle\/)/.test(f));
    expect(unwanted).toEqual([]);
  });

  it('installs without dev dependencies and answers --version from the build', async () => {
    for (const dev of ['typescript', 'vitest', '@biomejs/biome']) {
      expect(await stat(join(prefix, 'node_modules', dev)).catch(() => null), dev).toBeNull();
    }
    const r = await run(['--version'], {});
    expect(r.stdout).toBe(`pg-backup-bot ${version}`);
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    // restore_command's entry point resolves in the installed package too: wal-fetch answers, with its usage, and
    // exits 126, which stops a recovery whose restore_command is written wrong (wal-fetch-cli.ts ABORT_RECOVERY).
    const w = await run(['wal-fetch'], {});
    expect(w.stderr).toContain('usage: pg-backup-bot wal-fetch <target> <wal-file> <destination>');
    expect(w.exitCode).toBe(126);
  });

  it('takes a real, encrypted backup of a database, lists it, and restore-tests it', async () => {
    const keys = await generateKeyPair();
    await writeFile(join(dir, 'backup.key'), keys.identityFileText, { mode: 0o600 });
    const env = {
      DATABASE_URL: db.url,
      TARGET_NAME: 'shop',
      BACKUP_DIR: join(dir, 'backups'),
      BACKUP_ENCRYPTION_RECIPIENT: keys.recipient,
      BACKUP_ENCRYPTION_IDENTITY_FILE: join(dir, 'backup.key'),
    };
    const backup = await run(['backup'], env);
    expect(backup.exitCode, backup.stderr).toBe(0);
    expect(backup.stdout).toMatch(/^Backup shop-\d{8}T\d{6}Z(-\d+)? OK/);
    expect(backup.stdout).toMatch(/encryption\s+age, 1 recipient/);
    // Never the sources: an installed package has none, and says nothing about a stale build.
    expect(backup.stderr).not.toMatch(/running the sources/);
    const id = /^Backup (\S+) OK/.exec(backup.stdout)?.[1] ?? '';
    // The manifest names the version that wrote it, found from the bundle up to the installed package.json.
    const manifest = JSON.parse(await readFile(join(dir, 'backups', 'shop', id, 'manifest.json'), 'utf8')) as { tool: unknown };
    expect(manifest.tool).toEqual({ name: 'pg-backup-bot', version });
    const list = await run(['list'], { BACKUP_DIR: env.BACKUP_DIR });
    expect(list.exitCode, list.stderr).toBe(0);
    expect(list.stdout).toContain(id);
    const test = await run(['restore-test', id], env);
    expect(test.stdout, test.stderr).toMatch(new RegExp(`Restore test of ${id} PASSED`));
    expect(test.exitCode).toBe(0);
  });

  it('runs the installed copy, not this checkout', async () => {
    const r = await execa('node', ['-e', "console.log(require.resolve('pg-backup-bot/package.json'))"], { cwd: prefix, env: hostEnv(), extendEnv: false });
    expect(r.stdout).toBe(join(resolve(prefix), 'node_modules', 'pg-backup-bot', 'package.json'));
  });
});
