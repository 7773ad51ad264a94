// Leg K's floors: what a burst costs before any code of ours runs, measured beside the bot under the same dump.
//   node bench/ack-floor.mjs http <port>   node:http answering every POST with a fixed JSON text
//   node bench/ack-floor.mjs bolt <port>   a Bolt app (its HTTPReceiver) whose `/backup` acks a fixed text;
//                                          SLACK_SIGNING_SECRET in the environment, signatures checked as ours are
//   node bench/ack-floor.mjs receiver <port>   the same Bolt app on the bot's receiver (src/slack-receiver.ts, from
//                                          dist/: `npm run bench` builds first): what the receiver alone costs
// Prints "listening" once it accepts requests. Plain JavaScript, so it starts without a TypeScript loader.
import { createServer } from 'node:http';
import bolt from '@slack/bolt';

const [kind, portText] = process.argv.slice(2);
const port = Number(portText);

if (kind === 'http') {
  const server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => {
      body += chunk;
    });
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ response_type: 'ephemeral', text: `ok (${body.length} bytes)` }));
    });
  });
  server.listen(port, '127.0.0.1', () => console.log('listening'));
} else if (kind === 'bolt' || kind === 'receiver') {
  const receiver =
    kind === 'receiver'
      ? new (await import('../dist/slack-receiver.js')).SlackEventsReceiver({
          signingSecret: process.env.SLACK_SIGNING_SECRET,
          log: (await import('../dist/logger.js')).createLogger({ level: 'error' }),
        })
      : undefined;
  const app = new bolt.App({
    ...(receiver ? { receiver } : { signingSecret: process.env.SLACK_SIGNING_SECRET }),
    token: 'xoxb-floor',
    // Known ids instead of auth.test: this app never calls Slack.
    botId: 'B0FLOOR',
    botUserId: 'U0FLOOR',
    tokenVerificationEnabled: false,
    convoStore: false,
    logLevel: bolt.LogLevel.ERROR,
  });
  app.command('/backup', async ({ ack, command }) => {
    await ack({ response_type: 'ephemeral', text: `ok: ${command.text}` });
  });
  await app.start(port);
  console.log('listening');
} else {
  console.error('usage: node bench/ack-floor.mjs http|bolt|receiver <port>');
  process.exit(2);
}
