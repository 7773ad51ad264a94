import { escapeMrkdwn } from '../format.ts';
import type { CopyScrubOutcome, Healing } from '../storage/copy-scrub.ts';
import type { ScrubReport } from '../storage/scrub.ts';

type Named = { target: string; backupId: string; why: string };
const takeNew = (target: string) => `take a new backup (\`/backup now ${target}\`) if you counted on it`;

/**
 * What the channel hears of the primary's checksum scrub and of the rewrites from the copies (storage/copy-scrub.ts):
 * damage, what was mended and from where, what could not be, backups it could not read. A clean scrub is only logged.
 */
export function scrubLines(scrub: ScrubReport | string | null, healing: Healing | null): string[] {
  if (scrub === null) return [];
  if (typeof scrub === 'string') return [`:warning: The checksum scrub could not run: ${escapeMrkdwn(scrub)}`];
  const from = (d: Named) => healing?.healed.get(`${d.target}/${d.backupId}`);
  const healed = (d: Named) =>
    `:warning: Backup ${d.backupId} of ${d.target} was damaged on the primary (${escapeMrkdwn(d.why)}); it was rewritten from the copy in ${escapeMrkdwn(from(d) ?? '')} and read back whole.`;
  return [
    ...scrub.damaged.map((d) =>
      from(d)
        ? healed(d)
        : `:rotating_light: Backup ${d.backupId} of ${d.target} is damaged: ${escapeMrkdwn(d.why)}. It is marked damaged and left out of \`/backup list\`; ${takeNew(d.target)}.`,
    ),
    ...scrub.alreadyDamaged.filter(from).map(healed),
    ...(healing?.failed ?? []).map(
      (d) =>
        `:rotating_light: Backup ${d.backupId} of ${d.target} is damaged on the primary and could not be rewritten from the copy in ${escapeMrkdwn(d.destination)}: ${escapeMrkdwn(d.because)}.`,
    ),
    ...(healing?.primaryFoundDamaged ?? []).map(
      (d) =>
        `:rotating_light: Backup ${d.backupId} of ${d.target} is damaged on the primary: ${escapeMrkdwn(d.why)}. It is marked damaged and left out of \`/backup list\`; ${takeNew(d.target)}.`,
    ),
    ...(healing?.copiesFoundDamaged ?? []).map(
      (d) =>
        `:rotating_light: The copy of backup ${d.backupId} of ${d.target} in ${escapeMrkdwn(d.destination)} is damaged too: ${escapeMrkdwn(d.why)}. It is marked damaged there.`,
    ),
    ...scrub.unreadable.map(
      (d) => `:warning: The checksum scrub could not read backup ${d.backupId} of ${d.target}: ${escapeMrkdwn(d.why)}; it tries again tomorrow.`,
    ),
  ];
}

/** What the channel hears of a copy's scrub: damage and what became of it, backups it could not read. */
export function copyScrubLines(c: CopyScrubOutcome): string[] {
  const where = escapeMrkdwn(c.destination);
  if (typeof c.report === 'string') return [`:warning: The checksum scrub of the copy in ${where} could not run: ${escapeMrkdwn(c.report)}`];
  return [
    ...c.repaired.map(
      (d) =>
        `:warning: The copy of backup ${d.backupId} of ${d.target} in ${where} was damaged (${escapeMrkdwn(d.why)}); it was rewritten from the primary and read back whole.`,
    ),
    ...c.notRepaired.map(
      (d) =>
        `:rotating_light: The copy of backup ${d.backupId} of ${d.target} in ${where} is damaged: ${escapeMrkdwn(d.why)}. It is left out of that copy's listings and not rewritten: ${escapeMrkdwn(d.because)}${d.kind === 'unavailable' ? `; ${takeNew(d.target)}` : ''}.`,
    ),
    ...c.report.unreadable.map(
      (d) =>
        `:warning: The checksum scrub could not read the copy of backup ${d.backupId} of ${d.target} in ${where}: ${escapeMrkdwn(d.why)}; it tries again tomorrow.`,
    ),
  ];
}
