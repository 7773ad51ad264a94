import { formatInZone } from '../schedules/time.ts';

/**
 * A time as Slack shows it to each reader, in the reader's own time zone (`<!date^…>`), with the configured
 * zone's rendering as the fallback text (notifications, clients that cannot render the token): the same zone
 * the schedules and checklists use, never a bare UTC beside them.
 */
export function slackDate(at: Date | string, tz: string, format = '{date_short_pretty} {time}'): string {
  const d = typeof at === 'string' ? new Date(at) : at;
  return `<!date^${Math.floor(d.getTime() / 1000)}^${format}|${formatInZone(d, tz)}>`;
}
