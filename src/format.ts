/** Small, pure formatting helpers shared by every room: Slack messages, health evidence, checklists, the CLI. It imports nothing. */

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KB', 'MB', 'GB', 'TB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value >= 100 ? value.toFixed(0) : value.toFixed(1)} ${units[unit]}`;
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${ms} ms`;
  const s = ms / 1000;
  // Rounded once, to what is shown: 59.97 s is "1 min 0 s", and 239.6 s "4 min 0 s", never "60.0 s" or "3 min 60 s".
  if (s < 59.95) return `${s.toFixed(1)} s`;
  const whole = Math.round(s);
  const m = Math.floor(whole / 60);
  const rest = whole % 60;
  if (m < 60) return `${m} min ${rest} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

// toLocaleString builds a formatter on every call (about 15 µs): a list of ten backups made it ten times.
const counts = new Intl.NumberFormat('en-US');

export function formatCount(n: number): string {
  return counts.format(n);
}

/** To the second, where the minute is not enough (a swap, a Redis loss, a recovery window's ends). */
export const formatSecond = (d: Date) => `${d.toISOString().slice(0, 19).replace('T', ' ')} UTC`;

/** `2026-11-24 23:24 UTC`: unambiguous for people in different time zones at 3 a.m. */
export function formatTime(iso: string | Date): string {
  const d = typeof iso === 'string' ? new Date(iso) : iso;
  return `${d.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

/** Slack mrkdwn treats &, < and > specially: user-supplied text must be escaped before it is shown. */
export function escapeMrkdwn(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
