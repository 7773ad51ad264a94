/**
 * Polls `f` until it returns something other than undefined, and returns that; throws `timed out waiting for <what>`
 * after `timeoutMs` (and whatever `detail` says then).
 */
export async function until<T>(
  what: string,
  f: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 30_000,
  o: { pollMs?: number; detail?: () => string } = {},
): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${o.detail ? `: ${o.detail()}` : ''}`);
    await new Promise((r) => setTimeout(r, o.pollMs ?? 100));
  }
}
