#!/usr/bin/env bash
# Adds the official OpenAI and Anthropic Python SDKs to the project's .venv, for
# the shim's SDK tests (sdk-shim/tests/python_sdks.rs). Idempotent: creates .venv
# when missing (scripts/setup-python.sh makes the same one with the OTel SDK) and
# installs only what is not there at the pinned versions.
set -euo pipefail
cd "$(dirname "$0")/.."

OPENAI_VERSION="3.51.0"
ANTHROPIC_VERSION="2.10.0"

if [[ ! -x .venv/bin/python ]]; then
  echo "setup-python-shim: creating .venv" >&2
  python3 -m venv .venv
fi

have() {
  .venv/bin/python - "$1" "$2" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
sys.exit(0 if version(sys.argv[1]) == sys.argv[2] else 1)
PY
}

want=()
have openai "$OPENAI_VERSION" || want+=("openai==$OPENAI_VERSION")
have anthropic "$ANTHROPIC_VERSION" || want+=("anthropic==$ANTHROPIC_VERSION")
if (( ${#want[@]} )); then
  echo "setup-python-shim: installing ${want[*]} from PyPI" >&2
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "${want[@]}"
fi
