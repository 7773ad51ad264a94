#!/usr/bin/env node
// `npx pg-backup-bot …`: the bundled build (npm ci builds it through `prepare`; scripts/bundle.mjs says why), else
// the compiled modules, else — from a checkout that was never built — the TypeScript sources through tsx: slower
// to start, same behaviour.
import { existsSync } from 'node:fs';

const bundled = new URL('../dist/bundle/main.js', import.meta.url);
const compiled = new URL('../dist/main.js', import.meta.url);
if (existsSync(bundled)) {
  await import(bundled.href);
} else if (existsSync(compiled)) {
  await import(compiled.href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/main.ts');
}
