/**
 * Why a server cannot stream its WAL to the bot, in one sentence that says what to change there, from what
 * pg_receivewal said. The logical backups are not affected; the sentence says so where it is shown.
 */
const PROBLEMS: Array<[RegExp, (m: RegExpExecArray) => string]> = [
  [
    /no pg_hba\.conf entry for replication connection from host "([^"]+)", user "([^"]+)"/,
    (m) => `the server's pg_hba.conf has no replication line for ${m[2]} from ${m[1]}: add \`host replication ${m[2]} ${m[1]}/32 scram-sha-256\` and reload`,
  ],
  [
    /must be superuser or replication role|permission denied to start WAL sender|must have the REPLICATION attribute/,
    () =>
      'the role has no REPLICATION attribute: `ALTER ROLE … REPLICATION` (or a managed service that forbids replication connections: point-in-time recovery cannot run there)',
  ],
  [/wal_level|WAL level/i, () => 'wal_level is minimal on the server: set `wal_level = replica` and restart it'],
  [
    /all replication slots are in use/,
    () => 'every replication slot on the server is in use: raise `max_replication_slots` (restart) or drop an abandoned slot',
  ],
  [
    /number of requested standby connections exceeds max_wal_senders|max_wal_senders/,
    () => 'the server has no free WAL sender: raise `max_wal_senders` (restart)',
  ],
  [
    /replication slot "([^"]+)" is active for PID (\d+)/,
    (m) => `slot ${m[1]} is in use by another receiver (PID ${m[2]} on the server): another worker streams this target`,
  ],
  [
    /password authentication failed for user "([^"]+)"/,
    (m) => `the server refused the password of ${m[1]}: check the replication URL's variable (pitr.urlEnv)`,
  ],
  [
    /requested WAL segment (\w+) has already been removed/,
    (m) =>
      `the server no longer has WAL segment ${m[1]}, which the archive needs next: it was removed before it was archived (the slot was dropped, or max_slot_wal_keep_size was exceeded). The archive cannot go on from where it stopped: everything after its last segment is a gap. The receiver sets its spool's partial segment aside and, if the slot still points there, drops the slot, so it starts again from the server's current position; take a base backup at once`,
  ],
  [
    /could not connect to server|Connection refused|could not translate host name/,
    () => 'the server is not reachable on the replication URL: check its host and port',
  ],
];

export function streamProblem(said: string): string | null {
  for (const [re, say] of PROBLEMS) {
    const m = re.exec(said);
    if (m) return say(m);
  }
  return null;
}
