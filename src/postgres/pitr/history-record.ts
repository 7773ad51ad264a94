import type { Logger } from '../../logger.ts';
import { readdirIfExists } from '../../storage/fs-util.ts';
import { historyText, withReplication } from './diverged.ts';
import { parseHistory } from './lane.ts';
import type { LocalWalStore, WalEntry } from './wal-store.ts';

/**
 * History files archived before their record was kept (2026-12-07) carry no `forks`, and the window does not follow
 * their promotion (lane.ts): until a base backup was taken on the new timeline, `wal-gap` failed and the bot took one.
 * At the archive's start their record is added from the server's own copy of each history file (TIMELINE_HISTORY: a
 * history file is the same on every server that has it), so the window follows those promotions too. Files the
 * server no longer has (a timeline outside its history) stay as they are. Returns the names recorded.
 */
export async function recordOldHistories(store: LocalWalStore, url: string, log: Logger): Promise<string[]> {
  const names = (await readdirIfExists(store.dir)).filter((n) => /^[0-9A-F]{8}\.history\.json$/.test(n)).map((n) => n.slice(0, -'.json'.length));
  const unrecorded: WalEntry[] = [];
  for (const name of names) {
    const e = await store.entry(name);
    if (e && e.forks === undefined) unrecorded.push(e);
  }
  if (unrecorded.length === 0) return [];
  return withReplication(url, async (client) => {
    const recorded: string[] = [];
    for (const e of unrecorded) {
      const text = await historyText(client, Number.parseInt(e.name.slice(0, 8), 16)).catch((err: unknown) => {
        log.info({ err, name: e.name }, 'the server has no copy of this history file; its record stays missing');
        return null;
      });
      const forks = text === null ? [] : parseHistory(text);
      if (forks.length === 0) continue;
      await store.index({ ...e, forks });
      recorded.push(e.name);
    }
    return recorded;
  });
}

/** recordOldHistories beside the archive's start, its outcome logged: nothing waits for it. */
export function recordInBackground(store: LocalWalStore, url: string, log: Logger): void {
  void recordOldHistories(store, url, log)
    .then((recorded) => {
      if (recorded.length) log.info({ recorded }, "history files archived without their record: recorded from the server's copies");
    })
    .catch((err: unknown) => log.warn({ err }, 'history files archived without their record could not be recorded'));
}
