# Sourced by scripts/test: the local services the tests talk to, each
# installed on first use, started on 127.0.0.1 at a free port, and stopped by
# its PID when the script exits.

SERVICES_DIR="${AGENTHOST_SERVICES_DIR:-${CARGO_TARGET_DIR:-$PWD/target}/test-services}"
SERVICE_PIDS=()

stop_services() {
    for pid in "${SERVICE_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# moto: the AWS emulator (DynamoDB, S3 with Object Lock, SQS, EventBridge).
start_moto() {
    local venv="$SERVICES_DIR/moto-venv"
    if [ ! -x "$venv/bin/moto_server" ]; then
        step "Installing the AWS emulator (moto[server], from PyPI) into $venv"
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet --upgrade pip
        "$venv/bin/pip" install --quiet 'moto[server]'
    fi
    local port
    port=$(free_port)
    step "Starting moto on 127.0.0.1:$port"
    "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$SERVICES_DIR/moto.log" 2>&1 &
    SERVICE_PIDS+=("$!")
    for _ in $(seq 1 100); do
        if python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/moto-api/')" 2>/dev/null; then
            export AGENTHOST_TEST_AWS_ENDPOINT="http://127.0.0.1:$port"
            export AGENTHOST_REQUIRE_AWS=1
            export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1
            return 0
        fi
        sleep 0.2
    done
    echo "error: moto did not start; its log:" >&2
    cat "$SERVICES_DIR/moto.log" >&2
    return 1
}
