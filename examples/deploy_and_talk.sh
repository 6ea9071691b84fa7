#!/usr/bin/env bash
# Deploy airvoice to a RunPod GPU, then talk to it: the whole journey in one script.
#
#   export RUNPOD_API_KEY=...   # https://www.runpod.io/console/user/settings
#   export HF_TOKEN=hf_...      # with the Llama licence accepted on huggingface.co
#   bash examples/deploy_and_talk.sh                         # L4, ultravox-8b, mic and speakers
#   GPU=4090 PRESET=ultravox-1b bash examples/deploy_and_talk.sh
#   QUESTION_WAV=question.wav REPLY_WAV=reply.wav bash examples/deploy_and_talk.sh  # no sound card
#   STOP_WHEN_DONE=1 bash examples/deploy_and_talk.sh        # stop the pod (and its billing) after
#
# Any further arguments go to `airvoice deploy` (e.g. --data-center EU-RO-1 --idle-shutdown 15).
# The session token travels in AIRVOICE_TOKEN, never on a command line.
set -euo pipefail

: "${RUNPOD_API_KEY:?set RUNPOD_API_KEY (https://www.runpod.io/console/user/settings)}"
GPU="${GPU:-L4}"
PRESET="${PRESET:-ultravox-8b}"
PYTHON="${PYTHON:-python3}"

field() {  # field NAME: one field of the deploy result (JSON on stdin)
  "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"
}

echo "deploying airvoice ($PRESET) on a $GPU..." >&2
result="$(airvoice deploy --gpu "$GPU" --preset "$PRESET" --json "$@")"
endpoint="$(field endpoint <<<"$result")"
pod="$(field pod_id <<<"$result")"
AIRVOICE_TOKEN="$(field token <<<"$result")"
export AIRVOICE_TOKEN
echo "live: $endpoint (pod $pod, \$$(field cost_per_hour <<<"$result")/hour)" >&2

status=0
if [[ -n "${QUESTION_WAV:-}" ]]; then
  airvoice say "$endpoint" --in "$QUESTION_WAV" --out "${REPLY_WAV:-reply.wav}" || status=$?
else
  airvoice talk "$endpoint" || status=$?
fi

if [[ "${STOP_WHEN_DONE:-0}" == "1" ]]; then
  airvoice pods stop "$pod"
else
  echo "the pod keeps running (it stops itself when idle); stop it now with:" >&2
  echo "  airvoice pods stop $pod" >&2
fi
exit "$status"
