#!/bin/sh
# A shell script that starts the leaky sample as a child process (not with exec), then
# does a little more work of its own: record it with --follow-forks.
here=$(dirname "$0")
"$here/leaky"
echo "leaky exited with $?" >/dev/null
