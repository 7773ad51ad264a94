/**
 * What to do when a production target has no key to encrypt to: said by the config check at start-up and by a
 * backup that refuses, so both point at the same three ways out.
 */
export const ENCRYPTION_ADVICE =
  'run `npx pg-backup-bot init` (it makes an age key pair), or make one with `age-keygen -o backup.key` and set BACKUP_ENCRYPTION_RECIPIENT to its public key (age1…), or say `encryption: none` in the config file to keep backups unencrypted';
