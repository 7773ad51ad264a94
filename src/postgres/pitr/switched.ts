/**
 * What a timeline switch since the newest base backup means (window.ts `switched`), in sentences: the WAL written on
 * the new timeline is archived, and no base backup reaches it until one is taken there.
 */
export function switchedSentence(target: string, s: { timeline: number; segment: string; at: Date }): string {
  return (
    `the server moved to timeline ${s.timeline} (a promotion, or a restored copy made the primary) at about ${s.at.toISOString()} (segment ${s.segment}): ` +
    `the WAL written since is archived, but recovery from a base backup follows that backup's timeline, and none was taken on timeline ${s.timeline} yet. ` +
    `Take one now (\`pg-backup-bot base-backup ${target}\`, or \`/backup now --physical ${target}\`): the window reaches the new timeline once it finishes.`
  );
}
