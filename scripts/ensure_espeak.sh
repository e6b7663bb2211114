#!/usr/bin/env bash
# Make sure espeak-ng (which synthesizes the demo corpus) is installed:
# install it when running as root on Debian/Ubuntu, otherwise say how.
set -euo pipefail
if command -v espeak-ng >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing espeak-ng (synthesizes the demo corpus)..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq espeak-ng >/dev/null
  exit 0
fi
echo "error: espeak-ng is not installed; it synthesizes the demo corpus." >&2
echo "Install it with:  sudo apt-get install espeak-ng   (Debian/Ubuntu)" >&2
exit 1
