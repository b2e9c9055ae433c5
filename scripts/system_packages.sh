#!/usr/bin/env bash
# Install the Debian packages the project needs, where we can (root with apt).
# Where we cannot, name them; under CI a missing one fails the run instead of skipping tests.
set -euo pipefail
# bubblewrap isolates the sandbox; shellcheck lints the infra/ scripts in tests; chromium renders
# the trajectory viewer in a browser test.
needed=(bubblewrap shellcheck chromium)
commands=(bwrap shellcheck chromium)
missing=()
for i in "${!needed[@]}"; do
  command -v "${commands[$i]}" >/dev/null 2>&1 || missing+=("${needed[$i]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian packages: ${missing[*]}"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  exit 0
fi
echo "MISSING Debian packages: ${missing[*]} (install them: sudo apt-get install ${missing[*]})" >&2
if [ "${CI:-}" = "true" ]; then exit 1; fi
