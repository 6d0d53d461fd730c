#!/usr/bin/env bash
# The Prometheus alert rules of deploy/prometheus (issue 27): valid (`promtool check rules`),
# each alert raised by the series that should raise it and quiet otherwise (`promtool test
# rules`), and every mailpipe metric they name one the binary serves (a renamed metric must
# not leave an alert that can never fire). promtool comes from Debian's prometheus package,
# installed here when missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! command -v promtool >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus >/dev/null
fi
rules=deploy/prometheus/mailpipe-rules.yml
promtool check rules "$rules"
promtool test rules deploy/prometheus/mailpipe-rules.test.yml
missing=0
for metric in $(grep -o 'mailpipe_[a-z_]*' "$rules" | sort -u); do
    base="${metric%_count}"
    base="${base%_bucket}"
    base="${base%_sum}"
    if ! grep -rq "\"$base\"" host/src; then
        echo "alerts: $rules names $metric, which mailpipe does not serve" >&2
        missing=1
    fi
done
exit "$missing"
