#!/usr/bin/env node
// `npx pg-backup-bot …`: the compiled entry point (npm ci builds it through `prepare`); from a checkout that was
// never built, the TypeScript sources run through tsx instead — slower to start, same behaviour.
import { existsSync } from 'node:fs';

const compiled = new URL('../dist/main.js', import.meta.url);
if (existsSync(compiled)) {
  await import(compiled.href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/main.ts');
}
