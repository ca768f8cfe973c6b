#!/usr/bin/env bash
# Install what building and testing strata needs on a fresh Debian 12 machine.
# Idempotent: installs only the packages that are missing.
set -euo pipefail

packages=(docker-registry skopeo umoci podman docker.io runc attr zstd ca-certificates curl apache2-utils openssl python3 xfsprogs uidmap debootstrap)

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
    sudo_cmd=(sudo)
fi

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done

if [ "${#missing[@]}" -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    "${sudo_cmd[@]}" apt-get update -qq
    "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
    echo "setup: system packages already installed"
fi

# The Rust toolchain (rustup's, with rustfmt and clippy) is expected on the machine;
# Debian's own cargo is too old for edition 2024.
if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null 2>&1; then
    echo "setup: cargo not found: install a Rust toolchain >= 1.89 (rustup) first" >&2
    exit 1
fi
for component in rustfmt clippy; do
    if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
        if command -v rustup >/dev/null 2>&1; then
            rustup component add "$component"
        else
            echo "setup: cargo $component is missing and rustup is not available" >&2
            exit 1
        fi
    fi
done
# Cargo.toml's rust-version: File::lock is stable since 1.89.
minor=$(rustc --version | sed -E 's/^rustc 1\.([0-9]+).*/\1/')
if [ "$minor" -lt 89 ] 2>/dev/null; then
    echo "setup: $(rustc --version) is too old: strata needs Rust >= 1.89 (rustup update)" >&2
    exit 1
fi
echo "setup: $(cargo --version)"
