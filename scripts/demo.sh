#!/usr/bin/env bash
# The README's first command: on a fresh machine, build the four plugins the demo runs and the
# host, and run the offline demo (examples/demo.toml) from a clean slate, then show what
# happened. Needs Rust (rustup) only: no Node.js, Python or C toolchain.
set -euo pipefail
cd "$(dirname "$0")/.."
PLUGINS="rules-filer subject-tagger auto-responder forwarder" bash scripts/build-plugins.sh
cargo build --release --bin mailpipe
rm -rf target/demo
# examples/demo.toml with its paths seen from target/demo/: its mailbox is target/demo/maildir.
mkdir -p target/demo
sed -e 's#"\.\./target/demo/#"#g' -e 's#"\.\./target/plugins/#"../plugins/#g' \
    examples/demo.toml >target/demo/demo.toml
config=target/demo/demo.toml
# Alice's mailbox as she switches mailpipe on: two messages she read in March.
inbox=target/demo/maildir
mkdir -p "$inbox/cur" "$inbox/new" "$inbox/tmp"
cp examples/maildir/cur/* "$inbox/cur/"
touch -d '2026-03-02 09:00' "$inbox"/cur/*
./target/release/mailpipe check -c "$config"
echo "== first run: the mail already there is filed; nobody is answered about old mail =="
./target/release/mailpipe run -c "$config" --once
echo
echo "== twelve messages arrive: the new mail is filed, answered and forwarded =="
cp examples/maildir/new/* "$inbox/new/"
./target/release/mailpipe run -c "$config" --once
echo
echo "== filed mail (target/demo/mail) =="
find target/demo/mail -type f -path '*/cur/*' -o -type f -path '*/new/*' | sort | sed 's/^/  /'
echo "== outbox (target/demo/outbox) =="
ls target/demo/outbox | sed 's/^/  /'
echo
echo "== running again: everything is remembered, nothing is processed or sent twice =="
./target/release/mailpipe run -c "$config" --once
echo
echo "== next =="
echo "  the binary: $PWD/target/release/mailpipe (install it with: cargo install --locked --path host)"
echo "  why a message went where it went:  target/release/mailpipe explain -c $config '<20260302091405.51a7c2@mail.example.org>'"
echo "  one plugin on one message:          target/release/mailpipe test -c $config --plugin vacation examples/maildir/new/1700000001.M1P100.demo"
