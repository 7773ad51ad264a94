// Preloaded into a CLI run (NODE_OPTIONS=--import …): appends every TCP connection attempt the process makes,
// `host:port` a line, to the file PGBB_TEST_CONNECTS names. Observes only; changes nothing the process does.
import { appendFileSync } from 'node:fs';
import { subscribe } from 'node:diagnostics_channel';

const file = process.env.PGBB_TEST_CONNECTS;
if (file) {
  subscribe('net.client.socket', ({ socket }) => {
    socket.on('connectionAttempt', (ip, port) => appendFileSync(file, `${ip}:${port}\n`));
  });
}
