#!/usr/bin/env bash
# The peer: what users do today without batch-runner. GNU parallel runs one shell per job;
# each job signs its requests with openssl like the API page shows, POSTs /Run with curl,
# polls /Task/Detail every second until the status is terminal (jq reads the answers), then
# curls each output. No ledger, no resume, no retries.
#
#   WIRO_API_KEY=... [WIRO_API_SECRET=...] WIRO_API_BASE=... \
#     benchmarks/peer_parallel.sh JOBS.jsonl OUT_DIR CONCURRENCY [MODEL]
#
# JOBS.jsonl: one job per line, {"id": "...", "inputs": {"prompt": "...", ...}} (the
# manifest's jobs with their defaults applied). Without WIRO_API_SECRET the project is
# API-key only and requests are not signed.
set -euo pipefail

if [ $# -lt 3 ]; then
    echo "usage: $0 JOBS.jsonl OUT_DIR CONCURRENCY [MODEL]" >&2
    exit 2
fi
JOBS=$1
OUT=$2
CONCURRENCY=$3
export MODEL=${4:-PixVerse/image-to-video-v5}
export OUT
: "${WIRO_API_KEY:?set WIRO_API_KEY}"
: "${WIRO_API_BASE:?set WIRO_API_BASE}"
export WIRO_API_KEY WIRO_API_BASE WIRO_API_SECRET=${WIRO_API_SECRET:-}
mkdir -p "$OUT"

# Print curl -H arguments for one request: the key, plus a fresh nonce and its signature
# hex(HMAC-SHA256(key=API_KEY, msg=API_SECRET + NONCE)) for a signature project.
auth_headers() {
    printf '%s\n' -H "x-api-key: $WIRO_API_KEY"
    if [ -n "$WIRO_API_SECRET" ]; then
        local nonce sig
        nonce=$(date +%s%N)
        sig=$(printf '%s%s' "$WIRO_API_SECRET" "$nonce" \
            | openssl dgst -sha256 -hmac "$WIRO_API_KEY" -r)
        printf '%s\n' -H "x-nonce: $nonce" -H "x-signature: ${sig%% *}"
    fi
}

api() { # api ENDPOINT CURL_ARGS... -> the JSON answer on stdout
    local endpoint=$1
    shift
    local headers
    mapfile -t headers < <(auth_headers)
    curl -sS --fail-with-body "${headers[@]}" "$@" "$WIRO_API_BASE/$endpoint"
}

job() {
    local line=$1 id fields=() field answer taskid status url n=0
    id=$(jq -r .id <<<"$line")
    while IFS= read -r field; do
        fields+=(--form-string "$field")
    done < <(jq -r '.inputs | to_entries[] | "\(.key)=\(.value)"' <<<"$line")
    answer=$(api "Run/$MODEL" "${fields[@]}")
    taskid=$(jq -r '.taskid // empty' <<<"$answer")
    if [ -z "$taskid" ]; then
        echo "$id: /Run failed: $answer" >&2
        return 1
    fi
    while true; do
        sleep 1
        answer=$(api Task/Detail -H 'Content-Type: application/json' \
            -d "{\"taskid\": \"$taskid\"}") || continue
        status=$(jq -r '.tasklist[0].status' <<<"$answer")
        case $status in
            task_postprocess_end | task_cancel | task_error | task_error_full) break ;;
        esac
    done
    if [ "$status" != task_postprocess_end ] \
        || [ "$(jq -r '.tasklist[0].pexit' <<<"$answer")" != 0 ]; then
        echo "$id: $status" >&2
        return 1
    fi
    while IFS= read -r url; do
        if [ $n -eq 0 ]; then name=$id.mp4; else name=$id-$n.mp4; fi
        curl -sS --fail -o "$OUT/$name" "$url"
        n=$((n + 1))
    done < <(jq -r '.tasklist[0].outputs[].url' <<<"$answer")
}
export -f auth_headers api job

SHELL=$(command -v bash) exec parallel --will-cite -j "$CONCURRENCY" --halt never job {} :::: "$JOBS"
