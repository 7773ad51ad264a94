#!/usr/bin/env node
// `npx pg-backup-bot …`: the bundled build (npm ci builds it through `prepare`; scripts/bundle.mjs says why), else
// the compiled modules, else — from a checkout that was never built — the TypeScript sources through tsx: slower
// to start, same behaviour. A build older than the checkout's sources (a `git pull` without `npm run build`) is
// not run: the sources are, with a line saying so, so `npm start` never runs stale code and never rebuilds.
import { existsSync, readdirSync, renameSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

// restore_command's fast path: a segment the prefetcher already fetched and checked (src/postgres/pitr/
// wal-prefetch.ts) is handed over by a rename, before anything else is loaded. Recovery runs this once per segment;
// the prefetcher renews restore-pitr's hold (--reader) while it reads.
const [verb, , walName, walDest] = process.argv.slice(2);
const walReader = process.argv[6];
if (verb === 'wal-fetch' && (process.argv.length === 6 || (process.argv.length === 7 && walReader?.startsWith('--reader='))) && /^[0-9A-F]{24}$/.test(walName ?? '')) {
  try {
    renameSync(join(dirname(resolve(walDest)), '.pgbb-prefetch', walName), walDest);
    process.exit(0);
  } catch {
    // Not read ahead (yet): the full wal-fetch below fetches it.
  }
}

// restore_command's verbs load an entry point of their own (src/wal-main.ts): two variables, not the whole config.
const entry = verb === 'wal-fetch' || verb === 'wal-prefetch' ? 'wal-main' : 'main';
const bundled = new URL(`../dist/bundle/${entry}.js`, import.meta.url);
const compiled = new URL(`../dist/${entry}.js`, import.meta.url);
const sources = new URL('../src/', import.meta.url);

/** The newest modification time under a directory (0 when it does not exist: an installed package has no src/). */
function newest(dir) {
  if (!existsSync(dir)) return 0;
  let latest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) latest = Math.max(latest, statSync(`${entry.parentPath ?? entry.path}/${entry.name}`).mtimeMs);
  }
  return latest;
}

/** A module that fails to load ends the process; as wal-fetch with 126, which stops recovery (not 1: "not archived"). */
async function importOrStop(what) {
  try {
    return await import(what);
  } catch (err) {
    process.stderr.write(`pg-backup-bot: could not load ${what}: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(verb === 'wal-fetch' ? 126 : 1);
  }
}

const build = existsSync(bundled) ? bundled : existsSync(compiled) ? compiled : null;
const stale = build !== null && newest(fileURLToPath(sources)) > statSync(build).mtimeMs;
if (build && !stale) {
  await importOrStop(build.href);
} else if (!existsSync(sources)) {
  // An installed package without its build: packed with --ignore-scripts and never built.
  process.stderr.write('pg-backup-bot: this installation has neither its build (dist/) nor its sources (src/): reinstall it from a package made by `npm pack`.\n');
  // As restore_command, anything but 1 above 125 stops recovery; 1 would read as "not archived" (wal-fetch-cli.ts).
  process.exitCode = verb === 'wal-fetch' ? 126 : 1;
} else {
  if (stale) process.stderr.write('pg-backup-bot: the build is older than src/ (run `npm run build`); running the sources instead.\n');
  const { register } = await importOrStop('tsx/esm/api');
  register();
  await importOrStop(`../src/${entry}.ts`);
}
