#!/bin/sh
# Entry point of the master container: write the Jupyter Server config listing the worker hosts
# (mutual TLS with the client certificates each docker:dind worker generated in /certs/<name>/client),
# prepare the runtime images on every worker, then run Jupyter Server.
#
# Environment: BRAINDRILL_TOKEN (required), BRAINDRILL_WORKERS (names, space-separated),
# BRAINDRILL_SLOTS (per worker, default 4), BRAINDRILL_LANGUAGES (default: all),
# BRAINDRILL_CERTS (default /certs), BRAINDRILL_CONFIG (where to write the config).
# BRAINDRILL_CONFIG_ONLY=1 writes the config and exits (used by the tests).
set -eu

: "${BRAINDRILL_TOKEN:?set BRAINDRILL_TOKEN}"
: "${BRAINDRILL_WORKERS:=worker1 worker2 worker3}"
: "${BRAINDRILL_SLOTS:=4}"
: "${BRAINDRILL_LANGUAGES:=}"
: "${BRAINDRILL_CERTS:=/certs}"
: "${BRAINDRILL_CONFIG:=/etc/braindrill/jupyter_server_config.json}"
export BRAINDRILL_WORKERS BRAINDRILL_SLOTS BRAINDRILL_CERTS BRAINDRILL_CONFIG BRAINDRILL_TOKEN

mkdir -p "$(dirname "$BRAINDRILL_CONFIG")"
python3 - <<'PY'
import json, os

certs = os.environ["BRAINDRILL_CERTS"]
hosts = []
for name in os.environ["BRAINDRILL_WORKERS"].split():
    client = f"{certs}/{name}/client"
    hosts.append({
        "name": name,
        "url": f"tcp://{name}:2376",
        "slots": int(os.environ["BRAINDRILL_SLOTS"]),
        "tls": {"ca": f"{client}/ca.pem", "cert": f"{client}/cert.pem", "key": f"{client}/key.pem"},
    })
config = {
    "ServerApp": {
        "ip": "0.0.0.0",
        "port": 8888,
        "open_browser": False,
        "allow_root": True,
        "jpserver_extensions": {"braindrill_ext": True},
    },
    "IdentityProvider": {"token": os.environ["BRAINDRILL_TOKEN"]},
    # The master has no engine of its own: hosts lacking an image copy it from each other.
    "ExecutionEngine": {"hosts": hosts, "image_source_url": "none"},
}
with open(os.environ["BRAINDRILL_CONFIG"], "w") as f:
    json.dump(config, f, indent=2)
PY
[ "${BRAINDRILL_CONFIG_ONLY:-}" = 1 ] && exit 0

for name in $BRAINDRILL_WORKERS; do
    echo "preparing runtime images on $name"
    # shellcheck disable=SC2086 # a list of languages
    DOCKER_HOST="tcp://$name:2376" DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH="$BRAINDRILL_CERTS/$name/client" \
        braindrill-images prepare $BRAINDRILL_LANGUAGES \
        || echo "warning: some images could not be prepared on $name; see GET /braindrill/workers"
done

exec jupyter server --config="$BRAINDRILL_CONFIG"
