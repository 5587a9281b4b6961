#!/usr/bin/env bash
# Start Debian's docker-registry on a free loopback port. Prints HOST:PORT; the registry runs in the
# background with its files under $1 (its pid in $1/pid).
set -euo pipefail
dir=$1
mkdir -p "$dir/data"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$dir/config.yml" <<CONF
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $dir/data}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$port}
CONF
docker-registry serve "$dir/config.yml" >"$dir/log" 2>&1 &
echo $! > "$dir/pid"
for _ in $(seq 100); do
  if python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/v2/')" 2>/dev/null; then
    echo "127.0.0.1:$port"; exit 0
  fi
  sleep 0.1
done
echo "docker-registry did not start; its log:" >&2; cat "$dir/log" >&2; exit 1
