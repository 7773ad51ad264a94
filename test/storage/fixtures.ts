import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../../src/logger.ts';
import { LocalStorage } from '../../src/storage/index.ts';

export async function tempRoot(): Promise<{ root: string; storage: LocalStorage; cleanup(): Promise<void> }> {
  const root = await mkdtemp(join(tmpdir(), 'pgbb-ls-'));
  return { root, storage: new LocalStorage(root, createLogger({ level: 'silent' })), cleanup: () => rm(root, { recursive: true, force: true }) };
}
