#!/bin/bash
# Runs `worker` against a throwaway redis, stops redis for 20 s, counts output lines during the outage.
set -u
cd /work/main
PORT=6391
D=$(mktemp -d)
redis-server --port $PORT --save '' --appendonly no --daemonize yes --pidfile $D/r.pid --dir $D >/dev/null
sleep 0.5
export REDIS_URL=redis://127.0.0.1:$PORT DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres BACKUP_DIR=$D/b FIRST_BACKUP_AT_START=false LOG_LEVEL=info SLACK_BOT_TOKEN=xoxb-x SLACK_SIGNING_SECRET=s SLACK_API_URL=http://127.0.0.1:9/ METRICS_PORT=19464
node bin/pg-backup-bot.js ${MODE:-worker} > $D/out.log 2>&1 &
BOT=$!
sleep 8
echo "before: $(wc -l < $D/out.log) lines"
kill $(cat $D/r.pid); sleep 20
echo "after 20 s of outage: $(wc -l < $D/out.log) lines"
redis-server --port $PORT --save '' --appendonly no --daemonize yes --pidfile $D/r.pid --dir $D >/dev/null
sleep 8
echo "after restart: $(wc -l < $D/out.log) lines"
kill $BOT; sleep 3; kill $(cat $D/r.pid)
cp $D/out.log /tmp/flood-out.log
rm -rf $D
