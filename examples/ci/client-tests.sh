#!/usr/bin/env bash
# Stands for a client's own tests in the CI recipe (docs/ci.md): Microsoft's JavaScript and
# Python stacks against the emulator that examples/ci/with-emulator.sh started, reading its
# addresses, CA, tenant and token from the environment that script sets.
#
#   examples/ci/with-emulator.sh examples/ci/client-tests.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

python=${PYTHON:-.venv/bin/python}

# @azure/identity's credential takes a token from the emulator's endpoint over HTTPS (any
# client id and secret, since the emulator was started without --app); the Graph client
# creates, batches, filters, selects, deletes and rides out two 429s.
node examples/node/stock_client.js --authority "$EMULATOR_HTTPS_URL" --tenant "$EMULATOR_TENANT" \
  --client-id ci-app --client-secret ci-secret

# The Python SDK with the emulator's token: two 429s, two 503s and an ambiguous 504, each
# checked in the request journal's summary.
"$python" examples/python/resilience.py --base-url "$EMULATOR_URL/beta" --token "$EMULATOR_TOKEN"
