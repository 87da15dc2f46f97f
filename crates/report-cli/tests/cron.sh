#!/bin/sh
# A nightly cron job as an operator would write it: yesterday's OFD.ru receipts, started once
# and resumed by the next run if the machine goes down in between.
#   $REPORTS: the reports binary; $WORK: a folder for the state and the report;
#   OFD_BASE_URL, OFD_LOGIN, OFD_PASSWORD: the connection.
set -eu

nightly() {
    "$REPORTS" ofd run --period yesterday --tz Europe/Moscow --type ReceiptReport --all-kkts \
        --state-file "$WORK/ofd.state" --out "$WORK/receipts.zip" "$@"
}

# First run: killed hard (kill -9: no chance to clean up) once the report is started.
nightly -q &
pid=$!
tries=0
until [ -s "$WORK/ofd.state" ]; do
    tries=$((tries + 1))
    [ "$tries" -lt 400 ] || { echo "no state file after 20 s" >&2; exit 1; }
    sleep 0.05
done
kill -9 "$pid"
wait "$pid" || true
[ ! -e "$WORK/receipts.zip" ] || { echo "a killed run left a report" >&2; exit 1; }

# The next run resumes the same report and saves it.
nightly -q
[ -s "$WORK/receipts.zip" ] || { echo "no report after the second run" >&2; exit 1; }

# A run after that does nothing: the report is already there (so it needs no server at all).
OFD_BASE_URL=http://127.0.0.1:9 nightly --skip-existing
