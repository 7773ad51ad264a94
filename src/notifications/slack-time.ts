import { formatInZone } from '../schedules/time.ts';

/**
 * A time as Slack shows it to each reader, in the reader's own time zone (`<!date^…>`), with the configured
 * zone's rendering as the fallback text (notifications, clients that cannot render the token): the same zone
 * the schedules and checklists use, never a bare UTC beside them.
 */
export function slackDate(at: Date | string, tz: string, format = '{date_short_pretty} {time}'): string {
  const d = typeof at === 'string' ? new Date(at) : at;
  // A format to the second (the recoverable window: a recovery target is a second) has its fallback to the second
  // too; zones are whole minutes apart, so the seconds are the UTC ones (QA: the demo's terminal showed minutes).
  const zoned = formatInZone(d, tz);
  const fallback = format.includes('{time_secs}') ? zoned.replace(/ (\d{2}:\d{2}) /, ` $1:${String(d.getUTCSeconds()).padStart(2, '0')} `) : zoned;
  return `<!date^${Math.floor(d.getTime() / 1000)}^${format}|${fallback}>`;
}
