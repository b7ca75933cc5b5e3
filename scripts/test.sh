#!/usr/bin/env bash
# Install everything the tests need into .venv, then lint, type-check and test.
# Usage: bash scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
# Headless Chromium for the browser tests (Debian packages; Playwright drives it at
# /usr/bin/chromium, since its own browser download is not available). Needs root or sudo.
if [ ! -x /usr/bin/chromium ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
fi
# Java 17+ for the Spark tests (pyspark runs Spark in local mode in a JVM).
if ! java -version 2>&1 | grep -qE 'version "(1[7-9]|2[0-9])'; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq openjdk-17-jre-headless >/dev/null
fi
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
# Azurite (the Azure Blob emulator the storage tests start), from the committed lock file
# in tests/azurite/; 3.35 is the last release for Node < 22.
if ! cmp -s tests/azurite/package-lock.json .emulators/package-lock.json \
    || [ ! -f .emulators/node_modules/azurite/dist/src/blob/main.js ]; then
  mkdir -p .emulators
  cp tests/azurite/package.json tests/azurite/package-lock.json .emulators/
  npm ci --prefix .emulators --silent --no-audit --no-fund
fi
echo "== ruff"
.venv/bin/ruff check src tests examples bench
echo "== mypy"
.venv/bin/mypy
echo "== pytest"
.venv/bin/python -m pytest "$@"
