# Sourced by the other scripts: installs what building agenthost needs.
set -euo pipefail

step() { printf '\n==> %s\n' "$*"; }

if ! command -v cargo >/dev/null 2>&1; then
    echo "error: cargo is not installed; install Rust with rustup (https://rustup.rs) first" >&2
    exit 1
fi

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
    step "Installing the wasm32-wasip2 Rust target (guest components are built for it)"
    rustup target add wasm32-wasip2
fi
