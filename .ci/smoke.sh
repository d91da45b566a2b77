#!/usr/bin/env bash
# Smoke test with the real grpcurl against a running `kosha`: list, describe, health,
# one create, one CSV upload with a row error whose details grpcurl decodes through
# reflection, then a graceful SIGTERM.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

command -v grpcurl >/dev/null || { echo "smoke: grpcurl is not on PATH (run .ci/install-tools.sh)" >&2; exit 1; }
cargo build --quiet -p kosha --bin kosha
work="$(mktemp -d)"
log="$work/kosha.log"
./target/debug/kosha --listen 127.0.0.1:0 --data-dir "$work/data" >"$work/stdout" 2>"$log" &
pid=$!
cleanup() { kill "$pid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

address=""
for _ in $(seq 1 300); do
  address="$(sed -n 's/^kosha: serving on //p' "$work/stdout")"
  [ -n "$address" ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; echo "smoke: kosha exited early" >&2; exit 1; }
  sleep 0.1
done
[ -n "$address" ] || { cat "$log" >&2; echo "smoke: kosha never reported its address" >&2; exit 1; }
echo "smoke: kosha on $address"

expect() { # expect NAME PATTERN TEXT
  if ! grep -q -- "$2" <<<"$3"; then
    echo "smoke: $1: expected /$2/ in:" >&2
    echo "$3" >&2
    exit 1
  fi
  echo "smoke: ok: $1"
}

for _ in $(seq 1 100); do
  health="$(grpcurl -plaintext "$address" grpc.health.v1.Health/Check 2>&1 || true)"
  grep -q SERVING <<<"$health" && ! grep -q NOT_SERVING <<<"$health" && break
  sleep 0.1
done
expect "health" '"status": "SERVING"' "$health"
expect "list" "kosha.catalog.v1.CatalogService" "$(grpcurl -plaintext "$address" list)"
expect "list reflection" "grpc.reflection.v1" "$(grpcurl -plaintext "$address" list)"
expect "describe" "rpc UploadProducts" \
  "$(grpcurl -plaintext "$address" describe kosha.catalog.v1.CatalogService)"
expect "service health" '"status": "SERVING"' \
  "$(grpcurl -plaintext -d '{"service":"kosha.catalog.v1.CatalogService"}' "$address" grpc.health.v1.Health/Check)"

grpcurl -plaintext -d '{"client_id":"smoke","display_name":"Smoke Test"}' \
  "$address" kosha.catalog.v1.CatalogService/CreateClient >/dev/null
expect "create product" '"sku": "KURTA-RED-M"' "$(grpcurl -plaintext \
  -d '{"product":{"client_id":"smoke","sku":"KURTA-RED-M","category":"kurta","mrp":"1299"}}' \
  "$address" kosha.catalog.v1.CatalogService/CreateProduct)"

csv=$'sku,category,mrp\nKURTA-BLUE-M,kurta,999\nKURTA-BLUE-L,kurta,"1,800"\n'
chunk="$(printf '%s' "$csv" | base64 -w0)"
upload="$(grpcurl -plaintext -d "{\"client_id\":\"smoke\",\"mode\":\"UPLOAD_MODE_CREATE\",\"chunk\":\"$chunk\"}" \
  "$address" kosha.catalog.v1.CatalogService/UploadProducts 2>&1 || true)"
expect "upload rejected" "InvalidArgument" "$upload"
expect "row error details" "rows\[3\].mrp" "$upload"
expect "nothing stored" "not found" "$(grpcurl -plaintext -d '{"client_id":"smoke","sku":"KURTA-BLUE-M"}' \
  "$address" kosha.catalog.v1.CatalogService/GetProduct 2>&1 || true)"

kill -TERM "$pid"
wait "$pid"
expect "graceful stop" "stopped" "$(cat "$log")"
echo "smoke: passed"
