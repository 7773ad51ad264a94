import type { Config } from '../config.ts';

/** Where scratch databases are made for a target: the restore-test server from config, else the target's own. */
export function scratchServerUrl(config: Config, targetUrl: string): string {
  return config.restoreTest.serverUrl ?? targetUrl;
}

/** What every restore test and full restore takes from the config: one list, for the worker, the CLI and full restores. */
export function restoreTestSettings(config: Config) {
  return {
    scratchScope: config.queuePrefix,
    jobs: config.restoreTest.jobs,
    smokeQueries: config.restoreTest.smokeQueries,
    ...(config.pgBinDir ? { pgBinDir: config.pgBinDir } : {}),
    // Only restores read the secret key; the backup workers never do.
    identityFile: config.encryption.identityFile,
  };
}
