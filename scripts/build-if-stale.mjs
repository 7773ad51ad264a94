// `npm test`'s pretest: builds only when the build is missing or older than what it is made from. `npm ci` has just
// built through `prepare` (CI runs both, one after the other: a second build cost 8–20 s of the run for nothing); a
// developer who edited a source file gets the rebuild the tests that spawn bin/pg-backup-bot.js need.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';

/** The newest modification time of a file, or of any file under a directory (0 when it does not exist). */
function newest(path) {
  if (!existsSync(path)) return 0;
  const stat = statSync(path);
  if (!stat.isDirectory()) return stat.mtimeMs;
  let latest = 0;
  for (const entry of readdirSync(path, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) latest = Math.max(latest, statSync(`${entry.parentPath ?? entry.path}/${entry.name}`).mtimeMs);
  }
  return latest;
}

const outputs = ['dist/bundle/main.js', 'dist/bundle/wal-main.js', 'dist/bundle/sample-schema.sql'];
const inputs = ['src', 'scripts', 'package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json'];
const built = Math.min(...outputs.map((file) => (existsSync(file) ? statSync(file).mtimeMs : 0)));
if (built === 0 || Math.max(...inputs.map(newest)) > built) {
  execFileSync('npm', ['run', '-s', 'build'], { stdio: 'inherit' });
}
