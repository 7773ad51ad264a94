import type { ScrubState } from '../../src/storage/scrub.ts';

/** The scrub's memory in a Map, for tests that run the scrub without Redis (src/storage/scrub.ts redisScrubState is Redis's). */
export function memoryScrubState(): ScrubState & { seen: Map<string, number> } {
  const seen = new Map<string, number>();
  return {
    seen,
    verifiedAt: async () => new Map(seen),
    remember: async (key, at) => void seen.set(key, at),
    keepOnly: async (keys) => {
      for (const k of [...seen.keys()]) if (!keys.has(k)) seen.delete(k);
    },
  };
}
