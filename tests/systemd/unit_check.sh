#!/bin/sh
# The example systemd unit as systemd reads it: no unknown or misspelt
# setting, and an exposure below 5.0 ("OK" or better) in
# `systemd-analyze security` (--threshold is out of 100).
# Usage: unit_check.sh UNIT_FILE
set -u
unit=$1
out=$(systemd-analyze security --offline=true --threshold=49 "$unit" 2>&1)
status=$?
echo "$out" | tail -n 1
# Warnings of the unit's parser come before the table.
warnings=$(echo "$out" | grep -E "Unknown|unknown|Failed to parse|Invalid|ignoring" || true)
if [ -n "$warnings" ]; then
  echo "systemd-analyze warns about the unit:"
  echo "$warnings"
  exit 1
fi
if [ "$status" -ne 0 ]; then
  echo "the unit's exposure is 5.0 or more (systemd-analyze security exited $status)"
  exit 1
fi
