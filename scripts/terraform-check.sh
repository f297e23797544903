#!/usr/bin/env bash
# Checks the Terraform in terraform/: formatting (terraform fmt), every
# module and environment stack initialised from the provider mirror and
# validated, the modules' and stacks' `terraform test` suites on a mocked
# AWS provider, the Cedar schema copy against the host's, tflint where it
# can be installed, and a checkov scan (skips, each justified, in
# terraform/.checkov.yaml). Each validator is first shown a broken input,
# to prove it is awake. Nothing reaches AWS. Sourced by scripts/test, or
# run alone.
#
# The AWS provider comes from a filesystem mirror, never from a registry:
# AGENTHOST_TF_PLUGINS [default /opt/tf-plugins] holds
# registry.terraform.io/hashicorp/aws/<version>/<os>_<arch>/. Without it,
# init, validate and test are skipped, and the script says so.
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '\n==> %s\n' "$*"; }
fail() { echo "error: $*" >&2; exit 1; }
started=$SECONDS

dir="${AGENTHOST_SERVICES_DIR:-${CARGO_TARGET_DIR:-$PWD/target}/test-services}"
venv="$dir/k8s-venv"   # shared with scripts/k8s-check.sh: checkov is installed once
tfdata="${CARGO_TARGET_DIR:-$PWD/target}/terraform"
mkdir -p "$tfdata" && tfdata="$(cd "$tfdata" && pwd)"   # TF_DATA_DIR is read relative to -chdir
work="$tfdata/awake"
plugins="${AGENTHOST_TF_PLUGINS:-/opt/tf-plugins}"
modules=(platform-control-plane agent-runtime-lambda agent-runtime-rosa event-bus-core tool-gateway memory-tier observability-audit)
stacks=(dev stg prod)

command -v terraform >/dev/null 2>&1 || fail "terraform is not installed (1.11 or later runs the tests: mock providers with override_during)."
# A CLI configuration named but absent only earns a warning per command.
if [ -n "${TF_CLI_CONFIG_FILE:-}" ] && [ ! -f "$TF_CLI_CONFIG_FILE" ]; then
    export TF_CLI_CONFIG_FILE=/dev/null
fi
export TF_IN_AUTOMATION=1 TF_INPUT=0 CHECKPOINT_DISABLE=1
rm -rf "$work" && mkdir -p "$work"

# Runs terraform in directory $1 with its own data directory under
# target/terraform (the provider is a symlink into the mirror, not a copy).
tf() {
    local path="$1" name
    shift
    name="$(echo "${path#terraform/}" | tr / -)"
    TF_DATA_DIR="$tfdata/$name" terraform -chdir="$path" "$@"
}
# Awake checks: the command must fail, and say PATTERN (so that it failed
# for the reason we broke it, not another).
must_fail() {
    local what="$1" pattern="$2" out
    shift 2
    if out=$("$@" 2>&1); then
        fail "$what: it passed a broken input; it is not checking"
    fi
    grep -qF -- "$pattern" <<<"$out" || { echo "$out" >&2; fail "$what failed, but not with \"$pattern\""; }
}
# A fresh copy of the memory-tier module to break, initialised.
broken_copy() {
    rm -rf "$work/memory-tier" && cp -r terraform/modules/memory-tier "$work/memory-tier"
    rm -f "$work/memory-tier/.terraform.lock.hcl"
}
tf_init() {
    tf "$1" init -backend=false -plugin-dir="$plugins" -input=false -no-color >"$tfdata/init.log" 2>&1 \
        || { cat "$tfdata/init.log" >&2; fail "terraform init failed in $1"; }
}

step "Checking the layout: the seven modules, the environments' shared composition"
found=$(cd terraform/modules && ls -d */ | tr -d / | sort | tr '\n' ' ')
wanted=$(printf '%s\n' "${modules[@]}" | sort | tr '\n' ' ')
[ "$found" = "$wanted" ] || fail "terraform/modules holds [$found], expected exactly [$wanted]"
for module in "${modules[@]}"; do
    for file in variables.tf outputs.tf versions.tf README.md; do
        [ -f "terraform/modules/$module/$file" ] || fail "terraform/modules/$module has no $file"
    done
    ls terraform/modules/"$module"/tests/*.tftest.hcl >/dev/null 2>&1 || fail "terraform/modules/$module has no tests/*.tftest.hcl"
    if grep -rlE '^\s*provider\s+"' --include='*.tf' "terraform/modules/$module" >/dev/null; then
        fail "terraform/modules/$module configures a provider; only the environments do"
    fi
done
# Every input and output is in its module's README table.
for module in "${modules[@]}" platform-control-plane/modules/runtime-policy; do
    path="terraform/modules/$module"
    for name in $(sed -n 's/^variable "\([^"]*\)".*/\1/p; s/^output "\([^"]*\)".*/\1/p' "$path/variables.tf" "$path/outputs.tf"); do
        grep -qF "| \`$name\` |" "$path/README.md" || fail "$path/README.md does not list \`$name\` in its inputs/outputs tables"
    done
done
for stack in "${stacks[@]}"; do
    for file in versions.tf providers.tf variables.tf main.tf outputs.tf tests; do
        [ "$(readlink "terraform/envs/$stack/$file")" = "../common/$file" ] \
            || fail "terraform/envs/$stack/$file must be a link to ../common/$file (the environments share one composition)"
    done
    for file in terraform.tfvars release.auto.tfvars .terraform.lock.hcl; do
        [ -f "terraform/envs/$stack/$file" ] || fail "terraform/envs/$stack has no $file"
    done
done

step "Formatting (terraform fmt -check -recursive terraform)"
mkdir -p "$work/fmt"
printf 'resource "aws_sqs_queue" "q" {\nname = "x"\n      tags = {}\n}\n' >"$work/fmt/broken.tf"
must_fail "terraform fmt" "broken.tf" terraform fmt -check "$work/fmt"
terraform fmt -check -recursive -diff terraform

step "Checking the Cedar schema copy against the host's (host/src/governance/policy.rs)"
cedar=terraform/modules/platform-control-plane/cedar/agenthost.cedarschema.json
check_cedar() {
    python3 - "$1" <<'PY'
import json, re, sys
rust = open("host/src/governance/policy.rs").read()
text = rust.split('pub const SCHEMA: &str = r#"', 1)[1].split('"#;', 1)[0]
entities = {m[0]: sorted(t.strip() for t in m[1].split(",") if t.strip())
            for m in re.findall(r"entity (\w+)(?: in \[([^\]]*)\])?;", text)}
actions = {}
for name, principals, resources, context in re.findall(
        r"action (\w+) appliesTo \{\s*principal: \[([^\]]*)\],\s*resource: \[([^\]]*)\],\s*context: \{([^}]*)\}", text):
    actions[name] = (sorted(p.strip() for p in principals.split(",")),
                     sorted(r.strip() for r in resources.split(",")),
                     dict(tuple(a.strip() for a in f.split(":")) for f in context.split(",") if f.strip()))
schema = json.load(open(sys.argv[1]))["AgentHost"]
copy_entities = {n: sorted(e.get("memberOfTypes", [])) for n, e in schema["entityTypes"].items()}
copy_actions = {n: (sorted(a["appliesTo"]["principalTypes"]), sorted(a["appliesTo"]["resourceTypes"]),
                    {k: v["type"] for k, v in a["appliesTo"]["context"]["attributes"].items()})
                for n, a in schema["actions"].items()}
if not entities or not actions:
    sys.exit("cannot read the schema in host/src/governance/policy.rs")
if copy_entities != entities or copy_actions != actions:
    sys.exit(f"{sys.argv[1]} differs from the host's schema:\n host {entities}\n      {actions}\n copy {copy_entities}\n      {copy_actions}")
print(f"{len(entities)} entity types and {len(actions)} actions agree")
PY
}
python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); del s["AgentHost"]["actions"]["Delegate"]; json.dump(s,open(sys.argv[2],"w"))' \
    "$cedar" "$work/cedar.json"
must_fail "the Cedar comparison" "differs from the host's schema" check_cedar "$work/cedar.json"
check_cedar "$cedar"

mirrored=0
[ -d "$plugins/registry.terraform.io/hashicorp/aws" ] && mirrored=1
if [ "$mirrored" = 1 ]; then
    step "Initialising and validating every module and stack (provider mirror $plugins)"
    # Awake: an argument the provider does not know must fail validate.
    broken_copy
    tf_init "$work/memory-tier"
    sed -i 's/^  billing_mode .*/&\n  no_such_argument = true/' "$work/memory-tier/main.tf"
    must_fail "terraform validate" 'An argument named "no_such_argument" is not expected here' \
        tf "$work/memory-tier" validate -no-color
    for path in "${modules[@]/#/terraform/modules/}" "${stacks[@]/#/terraform/envs/}"; do
        tf_init "$path"
        printf '%-45s ' "$path"
        tf "$path" validate -no-color
    done

    step "Testing every module and stack (terraform test, mocked AWS provider)"
    # Awake: the memory table without TTL must fail its test.
    broken_copy
    tf_init "$work/memory-tier"
    sed -i 's/^    enabled        = true/    enabled        = false/' "$work/memory-tier/main.tf"
    grep -q 'enabled        = false' "$work/memory-tier/main.tf" || fail "could not break the copy of memory-tier (TTL)"
    must_fail "terraform test" "TTL deletes records on expires_at." tf "$work/memory-tier" test -no-color
    for path in "${modules[@]/#/terraform/modules/}" "${stacks[@]/#/terraform/envs/}"; do
        echo "--- $path"
        if ! tf "$path" test -no-color >"$tfdata/test.log" 2>&1; then
            cat "$tfdata/test.log" >&2
            fail "terraform test failed in $path"
        fi
        grep -E '^  run |^(Success|Failure)!' "$tfdata/test.log"
    done
else
    echo
    echo "!!! SKIPPED: terraform init, validate and test: there is no AWS provider mirror at $plugins" >&2
    echo "!!! (registry.terraform.io/hashicorp/aws/<version>/<os>_<arch>/). Nothing was validated or tested;" >&2
    echo "!!! only fmt, the Cedar schema comparison and checkov ran. Set AGENTHOST_TF_PLUGINS to a mirror." >&2
fi

step "Linting (tflint)"
if command -v tflint >/dev/null 2>&1; then
    tflint --chdir=terraform --recursive
else
    # tflint ships as release binaries and fetches its AWS ruleset from
    # GitHub; PyPI, npm and Debian have no package of it.
    echo "SKIPPED: tflint is not installed, and no package registry this machine reaches (PyPI, npm, Debian) carries it."
fi

step "Scanning with checkov (skips justified in terraform/.checkov.yaml)"
if [ ! -x "$venv/bin/checkov" ]; then
    echo "Installing checkov (PyPI) into $venv"
    [ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --upgrade pip
    "$venv/bin/pip" install --quiet "checkov==3.3.30"   # pinned: a new release brings new checks
fi
# Awake: the memory table without its customer key must fail.
broken_copy
python3 - "$work/memory-tier/main.tf" <<'PY'
import sys
path = sys.argv[1]
text = open(path).read()
broken = text.replace("  server_side_encryption {\n    enabled     = true\n    kms_key_arn = var.kms_key_arn\n  }\n", "")
if broken == text:
    sys.exit("could not break the copy of memory-tier (server_side_encryption)")
open(path, "w").write(broken)
PY
must_fail "checkov" "CKV_AWS_119" "$venv/bin/checkov" -d "$work/memory-tier" --framework terraform \
    --quiet --compact --skip-download --config-file terraform/.checkov.yaml
"$venv/bin/checkov" -d terraform --framework terraform --quiet --compact --skip-download \
    --config-file terraform/.checkov.yaml

if [ "$mirrored" = 1 ]; then
    echo "terraform: ${#modules[@]} modules and ${#stacks[@]} stacks formatted, validated, tested and scanned in $((SECONDS - started)) s"
else
    echo "terraform: formatting, the Cedar schema and checkov only, in $((SECONDS - started)) s; init, validate and test did NOT run (no provider mirror)" >&2
fi
