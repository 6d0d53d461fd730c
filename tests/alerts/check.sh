#!/usr/bin/env bash
# The Prometheus alert rules of deploy/prometheus and the Grafana dashboard of deploy/grafana
# (issue 27): the rules valid (`promtool check rules`), each alert raised by the series that
# should raise it and quiet otherwise (`promtool test rules`); the dashboard valid JSON whose
# every query is valid PromQL (checked by promtool as recording rules, Grafana's variables
# replaced); and every mailpipe metric either names one the binary serves (a renamed metric
# must not leave an alert that can never fire or an empty panel). promtool comes from
# Debian's prometheus package, installed here when missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! command -v promtool >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus >/dev/null
fi
rules=deploy/prometheus/mailpipe-rules.yml
promtool check rules "$rules"
promtool test rules deploy/prometheus/mailpipe-rules.test.yml
dashboard=deploy/grafana/mailpipe-dashboard.json
queries=$(mktemp --suffix=.yml)
trap 'rm -f "$queries"' EXIT
python3 - "$dashboard" "$queries" <<'PY'
import json, sys
dash = json.load(open(sys.argv[1]))
exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
assert exprs, "the dashboard has no queries"
with open(sys.argv[2], "w") as out:
    out.write("groups:\n  - name: dashboard\n    rules:\n")
    for i, e in enumerate(exprs):
        e = e.replace("$__rate_interval", "5m").replace("$job", ".*")
        out.write(f"      - record: dashboard:query{i}\n        expr: {json.dumps(e)}\n")
PY
promtool check rules "$queries"
missing=0
for metric in $(grep -ho 'mailpipe_[a-z_]*' "$rules" "$dashboard" | sort -u); do
    base="${metric%_count}"
    base="${base%_bucket}"
    base="${base%_sum}"
    if ! grep -rq "\"$base\"" host/src; then
        echo "alerts: $rules or $dashboard names $metric, which mailpipe does not serve" >&2
        missing=1
    fi
done
exit "$missing"
