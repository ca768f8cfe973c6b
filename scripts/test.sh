#!/usr/bin/env bash
# Set the machine up, then run every check CI runs: formatting, clippy (also on the library
# without the CLI), all tests.
# The integration tests need root (overlay mounts, device nodes, trusted.* xattrs).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
if ! command -v cargo >/dev/null 2>&1; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi

echo "== import cycles"
python3 scripts/import-cycles.py
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --all-targets -- -D warnings
# The library alone, without the `cli` feature (clap, indicatif, anyhow), as a program using it
# builds it.
echo "== cargo clippy --lib --no-default-features"
cargo clippy --lib --no-default-features -- -D warnings
echo "== cargo test"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --all-targets --no-fail-fast 2>&1 | tee "$log" || status=$?
# --all-targets leaves out the doc examples.
echo "== cargo test --doc"
cargo test --doc --no-fail-fast 2>&1 | tee -a "$log" || status=$?

# One closing line over all test binaries.
awk '/^test result:/ {
        for (i = 1; i <= NF; i++) {
            if ($(i+1) ~ /^passed/) p += $i
            if ($(i+1) ~ /^failed/) f += $i
            if ($(i+1) ~ /^ignored/) s += $i
        }
        n++
     }
     END { printf "summary: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
if ! grep -q '^test result:' "$log"; then
    echo "no test ran" >&2
    [ "$status" -ne 0 ] || status=1
fi
exit "$status"
