"""`py-word-count` (risk tier: read): counts the words in a text.

A sample tool written in Python and built with componentize-py, so the tests
prove that a component from that toolchain, importing every interface of the
`tool` world plus its own WASI runtime, loads and runs in agenthost. With
`remember` set it also writes the count to memory: a read-tier tool's grant
normally refuses that, and the refusal is reported in the output instead of
failing the call, so a test can see how the host answered.
"""

import json

import wit_world
from componentize_py_types import Err
from wit_world.imports import log, memory, types

SCHEMA = {
    "type": "object",
    "properties": {
        "text": {"type": "string"},
        "remember": {"type": "boolean"},
    },
    "required": ["text"],
    "additionalProperties": False,
}

# The WIT names of the error cases, so a test reads `denied: ...` exactly as
# the host spelt the case rather than the generated Python class name.
ERROR_CASES = {
    types.Error_Denied: "denied",
    types.Error_NotFound: "not-found",
    types.Error_InvalidInput: "invalid-input",
    types.Error_LimitExceeded: "limit-exceeded",
    types.Error_Unavailable: "unavailable",
    types.Error_ApprovalRequired: "approval-required",
    types.Error_Internal: "internal",
}


def error_text(error: types.Error) -> str:
    value = error.value
    if isinstance(value, types.ApprovalPending):
        value = f"{value.message} (request {value.request_id})"
    return f"{ERROR_CASES.get(type(error), type(error).__name__)}: {value}"


# componentize-py looks for a class named after the world's module
# (`wit_world.WitWorld`) in the app module; world-level exports are its methods.
class WitWorld(wit_world.WitWorld):
    def describe(self) -> types.ToolSpec:
        return types.ToolSpec(
            name="py-word-count",
            version="0.1.0",
            description="Counts the whitespace-separated words in a text; "
            "optionally remembers the count in the tenant's `notes` memory.",
            input_schema=json.dumps(SCHEMA),
            risk_tier=types.RiskTier.READ,
        )

    def invoke(self, input: str) -> str:
        # The host has checked the schema, but a malformed document must still
        # come back as the platform's error, not as a trap.
        try:
            args = json.loads(input)
            text = args["text"]
        except (ValueError, KeyError, TypeError) as e:
            raise Err(types.Error_InvalidInput(f"expected {{\"text\": string}}: {e}"))

        words = len(text.split())
        output = {"words": words}
        if args.get("remember") is True:
            options = memory.PutOptions(
                expected_version=None,
                ttl_seconds=None,
                governance=memory.Governance(
                    classification=memory.Classification.INTERNAL,
                    retention_days=None,
                ),
            )
            try:
                memory.put("notes", "last", str(words).encode(), options)
                output["memory"] = "ok"
            except Err as e:
                # A denial is an answer worth showing, not a failure of counting.
                output["memory"] = error_text(e.value)

        log.log(log.Level.INFO, "counted words", [("words", str(words))])
        return json.dumps(output)
