#!/bin/sh
# jobctl(1) as man shows it: groff reads it without a warning, and it lists
# every command of jobctl --help, each option of jobctl --help.
# Usage: man_check.sh JOBCTL MAN_PAGE
set -u
jobctl=$1
page=$2
warnings=$(groff -man -ww -z "$page" 2>&1)
if [ -n "$warnings" ]; then
  echo "groff warns about $page:"
  echo "$warnings"
  exit 1
fi
text=$(MANWIDTH=200 groff -man -Tutf8 -P-cbou -rLL=200n "$page" 2>/dev/null | sed 's/\xe2\x88\x92/-/g; s/\xe2\x80\x90/-/g')
missing=0
# "Commands:" lines of --help: "  job create NAME ...  Summary".
"$jobctl" --help | sed -n '/^Commands:/,/^$/p' | sed '1d;$d' | while read -r first second rest; do
  words="$first"
  case "$second" in [a-z]*) words="$first $second" ;; esac
  if ! printf '%s\n' "$text" | grep -q "jobctl $words"; then
    echo "jobctl.1 lacks the command: jobctl $words"
    exit 1
  fi
done || missing=1
for option in $("$jobctl" --help | sed -n '/^Options:/,/^$/p' | grep -oE '^  --[a-z-]+'); do
  if ! printf '%s\n' "$text" | grep -q -- "$option"; then
    echo "jobctl.1 lacks the option: $option"
    missing=1
  fi
done
[ "$missing" = 0 ] || exit 1
echo "jobctl.1: $(printf '%s\n' "$text" | grep -c '^       jobctl ') commands, no groff warning"
