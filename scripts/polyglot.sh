# Sourced by scripts/test: builds the sample tools written in other languages
# (sample-tools/py-word-count with componentize-py, sample-tools/js-char-count
# with componentize-js), so the tests can prove that components from those
# toolchains load and run in agenthost. Each toolchain is installed on first
# use from its registry (PyPI, npm) at the exact version pinned here, and a
# component is rebuilt only when its stamp (a digest of its sources, the WIT,
# this script and the toolchain versions) changes. Uses `step` from
# scripts/setup.sh.

POLYGLOT_COMPONENTIZE_PY_VERSION=0.25.1
POLYGLOT_JCO_VERSION=1.35.0
# Called through its own CLI rather than `jco componentize`: jco 1.35 brings
# componentize-js 0.22, which cannot read a WIT directory here ("reading file
# .../wit: No such file or directory"); 0.23 can. jco is kept for `jco wit`.
POLYGLOT_COMPONENTIZE_JS_VERSION=0.23.0

POLYGLOT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SERVICES_DIR="${SERVICES_DIR:-${AGENTHOST_SERVICES_DIR:-${CARGO_TARGET_DIR:-$PWD/target}/test-services}}"

# The stamp of one tool: its sources, the WIT it is built against, this
# script (build flags live here) and the toolchain versions.
polyglot_stamp() {
    local source_dir="$1" versions="$2"
    {
        echo "$versions"
        (cd "$POLYGLOT_ROOT" && find "$source_dir" wit -maxdepth 1 -type f | LC_ALL=C sort | xargs sha256sum)
        sha256sum <"$POLYGLOT_ROOT/scripts/polyglot.sh"
    } | sha256sum | cut -d' ' -f1
}

polyglot_install_py() {
    local venv="$1"
    if [ "$("$venv/bin/componentize-py" --version 2>/dev/null)" = "componentize-py $POLYGLOT_COMPONENTIZE_PY_VERSION" ]; then
        return 0
    fi
    step "Installing componentize-py $POLYGLOT_COMPONENTIZE_PY_VERSION (from PyPI) into $venv"
    if ! python3 -m venv "$venv" ||
        ! "$venv/bin/pip" install --quiet --disable-pip-version-check "componentize-py==$POLYGLOT_COMPONENTIZE_PY_VERSION"; then
        echo "error: cannot install componentize-py $POLYGLOT_COMPONENTIZE_PY_VERSION from PyPI into $venv (needs python3 with venv and a reachable PyPI)" >&2
        return 1
    fi
}

polyglot_install_js() {
    local prefix="$1"
    local installed
    installed=$(node -e '
        const v = (p) => { try { return require(p + "/package.json").version; } catch { return "none"; } };
        console.log(v(process.argv[1] + "/@bytecodealliance/jco"), v(process.argv[1] + "/@bytecodealliance/componentize-js"));
    ' "$prefix/node_modules" 2>/dev/null || true)
    if [ "$installed" = "$POLYGLOT_JCO_VERSION $POLYGLOT_COMPONENTIZE_JS_VERSION" ]; then
        return 0
    fi
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        echo "error: node and npm are needed to build sample-tools/js-char-count; install Node.js 20 or newer" >&2
        return 1
    fi
    step "Installing jco $POLYGLOT_JCO_VERSION and componentize-js $POLYGLOT_COMPONENTIZE_JS_VERSION (from npm) into $prefix"
    mkdir -p "$prefix"
    if ! npm install --prefix "$prefix" --save-exact --no-audit --no-fund --loglevel=error \
        "@bytecodealliance/jco@$POLYGLOT_JCO_VERSION" \
        "@bytecodealliance/componentize-js@$POLYGLOT_COMPONENTIZE_JS_VERSION"; then
        echo "error: cannot install jco $POLYGLOT_JCO_VERSION and componentize-js $POLYGLOT_COMPONENTIZE_JS_VERSION from npm into $prefix" >&2
        return 1
    fi
}

# Fails unless the component at $1 imports every interface named after it:
# a toolchain that silently dropped one would make the tests prove nothing.
polyglot_check_imports() {
    local wasm="$1" jco="$2"
    shift 2
    local world
    world=$("$jco" wit "$wasm") || {
        echo "error: jco wit cannot read $wasm" >&2
        return 1
    }
    local interface
    for interface in "$@"; do
        if ! grep -q "^  import $interface@" <<<"$world"; then
            echo "error: $wasm does not import $interface; its world:" >&2
            echo "$world" | grep -E '^  (import|export) ' >&2
            return 1
        fi
    done
}

build_polyglot() {
    mkdir -p "$SERVICES_DIR/polyglot" || return 1
    local services out venv prefix
    services="$(cd "$SERVICES_DIR" && pwd)"
    out="$services/polyglot"
    venv="$services/py-venv"
    prefix="$services/node"
    local jco="$prefix/node_modules/.bin/jco"
    local platform=(agenthost:platform/log agenthost:platform/memory agenthost:platform/events agenthost:platform/audit)

    local py_wasm="$out/py_word_count.wasm" py_stamp
    py_stamp=$(polyglot_stamp sample-tools/py-word-count "componentize-py $POLYGLOT_COMPONENTIZE_PY_VERSION")
    if [ -f "$py_wasm" ] && [ "$(cat "$py_wasm.stamp" 2>/dev/null)" = "$py_stamp" ]; then
        step "sample-tools/py-word-count is up to date ($py_wasm)"
    else
        polyglot_install_py "$venv" || return 1
        polyglot_install_js "$prefix" || return 1
        step "Building sample-tools/py-word-count with componentize-py into $py_wasm"
        rm -f "$py_wasm.stamp"
        # Built from a copy: componentize-py imports the app while it builds
        # and leaves a __pycache__ beside it, which must not land in the repo.
        local py_src="$out/py-word-count-src"
        rm -rf "$py_src" && cp -R "$POLYGLOT_ROOT/sample-tools/py-word-count" "$py_src" || return 1
        # VIRTUAL_ENV makes componentize-py take site-packages from our venv,
        # not from whichever python3 is on PATH, so the build is the same
        # on every machine.
        (cd "$POLYGLOT_ROOT" && VIRTUAL_ENV="$venv" "$venv/bin/componentize-py" --quiet \
            -d wit -w tool componentize -p "$py_src" app -o "$py_wasm.tmp") || {
            echo "error: componentize-py could not build sample-tools/py-word-count" >&2
            return 1
        }
        polyglot_check_imports "$py_wasm.tmp" "$jco" "${platform[@]}" || return 1
        mv "$py_wasm.tmp" "$py_wasm"
        echo "$py_stamp" >"$py_wasm.stamp"
    fi

    local js_wasm="$out/js_char_count.wasm" js_stamp
    js_stamp=$(polyglot_stamp sample-tools/js-char-count \
        "jco $POLYGLOT_JCO_VERSION componentize-js $POLYGLOT_COMPONENTIZE_JS_VERSION")
    if [ -f "$js_wasm" ] && [ "$(cat "$js_wasm.stamp" 2>/dev/null)" = "$js_stamp" ]; then
        step "sample-tools/js-char-count is up to date ($js_wasm)"
    else
        polyglot_install_js "$prefix" || return 1
        step "Building sample-tools/js-char-count with componentize-js into $js_wasm"
        rm -f "$js_wasm.stamp"
        # No --disable: fetch() and so the wasi:http import must stay, since
        # that import is what the tests load it for.
        (cd "$POLYGLOT_ROOT" && "$prefix/node_modules/.bin/componentize-js" \
            --wit wit --world-name tool -o "$js_wasm.tmp" sample-tools/js-char-count/tool.js) || {
            echo "error: componentize-js could not build sample-tools/js-char-count" >&2
            return 1
        }
        polyglot_check_imports "$js_wasm.tmp" "$jco" "${platform[@]}" wasi:http/outgoing-handler || return 1
        mv "$js_wasm.tmp" "$js_wasm"
        echo "$js_stamp" >"$js_wasm.stamp"
    fi

    export AGENTHOST_PY_TOOL="$py_wasm" AGENTHOST_JS_TOOL="$js_wasm"
}
