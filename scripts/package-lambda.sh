#!/usr/bin/env bash
# Builds the AWS Lambda package of agenthost (runtime provided.al2023):
#
#   agenthost.zip
#     bootstrap    the agenthost binary; started with no arguments and
#                  AWS_LAMBDA_RUNTIME_API set, it runs `agenthost lambda`
#     config/      the function's host.toml and tenants/ (set the function's
#                  AGENTHOST_CONFIG=/var/task/config)
#     registry/    the bundle: every aliased version of the source registry,
#                  checked, with artifacts precompiled for the function's
#                  engine (`agenthost bundle`); host.toml reads it with
#                  [registry] dir = "../registry" and share_artifacts = true
#
# Usage:
#   scripts/package-lambda.sh --config FUNCTION_CONFIG --from SOURCE_CONFIG \
#       [--data-dir DIR] [--memory MIB] [--out DIR] [--binary PATH] [--arm64]
#
#   --from      the config whose registry holds the versions to ship (the
#               deploy pipeline's: S3, or a local data directory); its [keys]
#               must give the cache key the function gets, or the function
#               compiles at start instead of loading the artifacts
#   --memory    the function's MemorySize in MiB [1024]
#   --binary    an agenthost binary already built for the function's
#               architecture (skips the build)
#   --arm64     build for arm64 with `cargo lambda build` (pip install
#               --no-deps cargo-lambda; ziglang from PyPI); the bundle's
#               artifacts are made by the binary of the machine that runs
#               this script, so build arm64 packages on an arm64 machine
set -euo pipefail
here="$(pwd)"
cd "$(dirname "$0")/.."
# Paths given relative to where the script was started.
absolute() { case "$1" in /*) printf '%s' "$1" ;; *) printf '%s/%s' "$here" "$1" ;; esac; }

config="" from="" data="" memory=1024 out="$here/dist/lambda" binary="" arm64=0
while [ $# -gt 0 ]; do
    case "$1" in
        --config) config="$(absolute "$2")"; shift 2 ;;
        --from) from="$(absolute "$2")"; shift 2 ;;
        --data-dir) data="$(absolute "$2")"; shift 2 ;;
        --memory) memory="$2"; shift 2 ;;
        --out) out="$(absolute "$2")"; shift 2 ;;
        --binary) binary="$(absolute "$2")"; shift 2 ;;
        --arm64) arm64=1; shift ;;
        *) echo "error: unknown argument $1 (see the comment at the top of $0)" >&2; exit 2 ;;
    esac
done
[ -n "$config" ] && [ -f "$config/host.toml" ] || { echo "error: --config must be a directory with host.toml" >&2; exit 2; }
[ -n "$from" ] && [ -d "$from" ] || { echo "error: --from must be the config directory of the source registry" >&2; exit 2; }
case "$memory" in ''|*[!0-9]*) echo "error: --memory must be a number of MiB" >&2; exit 2 ;; esac
if ! python3 - "$config/host.toml" <<'PY'
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    registry = tomllib.load(f).get("registry", {})
ok = registry.get("dir") == "../registry" and registry.get("share_artifacts") is True \
    and registry.get("backend", "local") == "local"
sys.exit(0 if ok else 1)
PY
then
    echo "error: $config/host.toml must read the bundle: [registry] dir = \"../registry\" and share_artifacts = true" >&2
    exit 2
fi
# The package is readable by whoever may read the function: no private keys
# ride along (the function takes its keys from Secrets Manager).
if grep -rlE -- '-----BEGIN ([A-Z]+ )?PRIVATE KEY-----' "$config" >/dev/null 2>&1; then
    echo "error: $config holds a private key ($(grep -rlE -- '-----BEGIN ([A-Z]+ )?PRIVATE KEY-----' "$config" | head -1)): keep keys out of the package ([keys] source = \"secretsmanager\")" >&2
    exit 2
fi

step() { printf '\n==> %s\n' "$*"; }

if [ -z "$binary" ]; then
    if [ "$arm64" = 1 ]; then
        step "Building agenthost for arm64 (cargo lambda build --release --arm64)"
        cargo lambda build --release --arm64 -p agenthost --bin agenthost
        binary=target/lambda/agenthost/bootstrap
        [ -f "$binary" ] || binary=target/aarch64-unknown-linux-gnu/release/agenthost
    else
        step "Building agenthost for this machine's architecture (cargo build --release)"
        cargo build --release --locked -p agenthost --bin agenthost
        binary=target/release/agenthost
    fi
fi
[ -x "$binary" ] || { echo "error: $binary is not an executable" >&2; exit 2; }

stage=$(mktemp -d)
trap 'chmod -R u+w "$stage" 2>/dev/null; rm -rf "$stage"' EXIT
mkdir -p "$stage/config"
cp "$binary" "$stage/bootstrap"
chmod 0755 "$stage/bootstrap"
# The configuration only: no keys directory, no VCS or environment files,
# no symlinks followed out of it.
(cd "$config" && find . -type f ! -path './keys/*' ! -path './.git/*' ! -name '.env*' ! -name '*.key' -print0) \
    | while IFS= read -r -d '' file; do
        mkdir -p "$stage/config/$(dirname "$file")"
        cp -P "$config/$file" "$stage/config/$file"
    done

step "Bundling the registry of $from for a $memory MiB function (agenthost bundle)"
data_args=(--config "$from")
[ -n "$data" ] && data_args+=(--data-dir "$data")
# The machine's own binary compiles: its artifacts are for this architecture.
bundler="$binary"
[ "$arm64" = 1 ] && [ "$(uname -m)" != aarch64 ] && bundler=""
if [ -n "$bundler" ]; then
    "$bundler" "${data_args[@]}" bundle --out "$stage/registry" --lambda-memory "$memory" >"$stage/bundle.json"
    cat "$stage/bundle.json"
    rm "$stage/bundle.json"
else
    echo "warning: this machine cannot run the arm64 binary: the bundle ships without artifacts, and the function compiles each component at its first use" >&2
    cargo run --quiet --release -p agenthost -- "${data_args[@]}" bundle --out "$stage/registry" --lambda-memory "$memory" >/dev/null
    find "$stage/registry" -path '*/artifacts/*' -delete
fi

step "Writing $out/agenthost.zip"
mkdir -p "$out"
zip_path="$(cd "$out" && pwd)/agenthost.zip"
rm -f "$zip_path"
(cd "$stage" && python3 - "$zip_path" <<'PY'
import os, sys, zipfile
target = sys.argv[1]
with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as z:
    for root, dirs, files in os.walk("."):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(root, name)
            if os.path.islink(path):
                sys.exit(f"error: {path} is a symlink; the package holds files only")
            z.write(path, os.path.relpath(path, "."))
PY
)
ls -l "$zip_path"
