/**
 * The postgres core's door: what backups and restores share — the connection environment and passfile, tool
 * discovery (major-matched), failure sentences, the counts a restore test compares, the dump scope.
 * Logical backups have their own room (./backup/index.ts), restores theirs (./restore/index.ts); physical backups
 * and WAL will get one beside them.
 */
export { cleanBaseEnv, parsePgUrl, pgClientConfig, serverLabel, withPgEnv } from './connection.ts';
export { countObjects, countRows } from './counts.ts';
export { findPgTools, findZstd, isExecutable, type PgTools } from './tools.ts';
export { TOOL_NICENESS, yieldCpu } from './child-pipes.ts';
export { classifyFailure, clientFailure, firstErrorLine, toolFailure } from './failures.ts';
