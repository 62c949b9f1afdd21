# shellcheck shell=bash
#
# scripts/lib/herald.sh — manage the local Herald processes for scripts/up, scripts/down
# and scripts/restart. Sources services.sh.
#
# Two modes (HS_MODE, recorded in .herald/env):
#   single   one `herald` process (api + worker + gateway, in-process bus unless
#            HERALD_REDIS_URL is set); Postgres is the only server it needs
#   multi    herald-api, herald-worker and herald-gateway as three processes, Redis
#            between them
#
# Layout of the git-ignored state directory (.herald/ at the repository root):
#   .herald/env              the exact environment the services were started with, and
#                            HS_MODE (written by scripts/up, reused by scripts/restart)
#   .herald/jwt-secret       generated development HS256 secret (reused across restarts)
#   .herald/demo.env         demo tokens minted by scripts/up
#   .herald/logs/<svc>.log   stderr+stdout of each service (previous run: <svc>.log.prev)
#   .herald/pids/<svc>.pid   pid of each running service
# where <svc> is `herald` in single mode, and api, worker, gateway in multi mode.

if [[ -n "${__HS_HERALD_SH_LOADED:-}" ]]; then
    return 0
fi
__HS_HERALD_SH_LOADED=1

# shellcheck source=scripts/lib/services.sh
source "$(dirname "${BASH_SOURCE[0]}")/services.sh"

# The multi-process services, in start order (the API migrates the database, so it
# goes first). The single-node process is `herald`.
HS_SERVICES=(api worker gateway)
# Every process scripts/up may have started, in stop order (gateways first, so clients
# reconnect elsewhere while the rest drains).
# shellcheck disable=SC2034 # read by scripts/up and scripts/down
HS_ALL_PROCS=(herald gateway worker api)
HS_ENV_FILE="$HS_STATE_DIR/env"
HS_SECRET_FILE="$HS_STATE_DIR/jwt-secret"
HS_STOP_TIMEOUT="${HS_STOP_TIMEOUT:-10}"

# svc_valid SVC — SVC is one of api, worker, gateway (the multi-process services).
svc_valid() {
    local s
    for s in "${HS_SERVICES[@]}"; do
        [[ "$1" == "$s" ]] && return 0
    done
    return 1
}

# svc_bin SVC — the binary's file name: `herald` for the single node, herald-SVC else.
svc_bin() {
    if [[ "$1" == herald ]]; then
        printf 'herald\n'
    else
        printf 'herald-%s\n' "$1"
    fi
}

svc_pidfile() { printf '%s/pids/%s.pid\n' "$HS_STATE_DIR" "$1"; }
svc_logfile() { printf '%s/logs/%s.log\n' "$HS_STATE_DIR" "$1"; }

# svc_addr SVC — the listen address (host:port) the service is configured with
# (`herald` answers REST, /readyz and /v1/stream on the API address).
svc_addr() {
    case "$1" in
    api | herald) printf '%s\n' "${HERALD_API_ADDR:-127.0.0.1:8080}" ;;
    gateway) printf '%s\n' "${HERALD_GATEWAY_ADDR:-127.0.0.1:8081}" ;;
    worker) printf '%s\n' "${HERALD_WORKER_ADDR:-127.0.0.1:8082}" ;;
    *) die "unknown service '$1'" ;;
    esac
}

# svc_url SVC — base URL a local client uses to reach the service (a wildcard listen
# address becomes the loopback address).
svc_url() {
    local addr host port
    addr=$(svc_addr "$1")
    host=${addr%:*}
    port=${addr##*:}
    case "$host" in
    '' | 0.0.0.0 | '*') host=127.0.0.1 ;;
    '[::]' | '::') host='[::1]' ;;
    esac
    printf 'http://%s:%s\n' "$host" "$port"
}

# svc_port SVC — the TCP port the service listens on.
svc_port() {
    local addr
    addr=$(svc_addr "$1")
    printf '%s\n' "${addr##*:}"
}

# svc_pid SVC — print the pid of the running service, or fail. Checks that the pid in
# the pid file still belongs to SVC's binary, so a recycled pid is never signalled.
svc_pid() {
    local pidfile pid exe
    pidfile=$(svc_pidfile "$1")
    [[ -s "$pidfile" ]] || return 1
    read -r pid <"$pidfile" || return 1
    pid_alive "$pid" || return 1
    exe=$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | head -n 1) || return 1
    [[ "$(basename -- "$exe")" == "$(svc_bin "$1")" ]] || return 1
    printf '%s\n' "$pid"
}

# stop_services [--kill9] SVC... — SIGTERM (or SIGKILL with --kill9) every running SVC,
# wait up to HS_STOP_TIMEOUT seconds for all of them, SIGKILL what is left.
stop_services() {
    local sig=TERM
    if [[ "${1:-}" == --kill9 ]]; then
        sig=KILL
        shift
    fi
    local svc pid
    local -a pids=() names=()
    for svc in "$@"; do
        if pid=$(svc_pid "$svc"); then
            log "stopping $svc (pid $pid, SIG$sig)"
            kill -s "$sig" "$pid" 2>/dev/null || true
            pids+=("$pid")
            names+=("$svc")
        fi
        rm -f "$(svc_pidfile "$svc")"
    done
    ((${#pids[@]} > 0)) || return 0

    # Poll every 0.2 s: HS_STOP_TIMEOUT seconds of grace, then SIGKILL the rest.
    local ticks=0 grace_ticks=$((HS_STOP_TIMEOUT * 5)) i alive
    while true; do
        alive=0
        for pid in "${pids[@]}"; do
            if pid_alive "$pid"; then alive=1; fi
        done
        ((alive)) || break
        if ((ticks == grace_ticks)); then
            for i in "${!pids[@]}"; do
                if pid_alive "${pids[$i]}"; then
                    warn "${names[$i]} (pid ${pids[$i]}) still running after ${HS_STOP_TIMEOUT}s; sending SIGKILL"
                    kill -s KILL "${pids[$i]}" 2>/dev/null || true
                fi
            done
        fi
        if ((ticks > grace_ticks + 50)); then
            die "could not stop: ${names[*]} (pids ${pids[*]})"
        fi
        ticks=$((ticks + 1))
        sleep 0.2
    done
    ok "stopped: ${names[*]}"
}

# cargo_target_dir — where cargo puts build output (honours CARGO_TARGET_DIR and
# build.target-dir in .cargo/config.toml).
cargo_target_dir() {
    local dir
    dir=$(cd "$HS_ROOT" && cargo metadata --format-version 1 --no-deps 2>/dev/null |
        sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p') || true
    printf '%s\n' "${dir:-${CARGO_TARGET_DIR:-$HS_ROOT/target}}"
}

# herald_prepare_env — fill in the environment the services run with: the documented
# defaults for everything unset, a persistent dev JWT secret, and HS_BIN_DIR. HS_MODE
# (single, the default, or multi) decides about Redis: multi mode defaults
# HERALD_REDIS_URL; single mode leaves it as the caller set it (unset: in-process bus).
herald_prepare_env() {
    HS_MODE="${HS_MODE:-single}"
    export HS_MODE
    export HERALD_DATABASE_URL="${HERALD_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/herald}"
    if [[ "$HS_MODE" == multi ]]; then
        export HERALD_REDIS_URL="${HERALD_REDIS_URL:-redis://127.0.0.1:6379}"
    fi
    export HERALD_REDIS_PREFIX="${HERALD_REDIS_PREFIX:-herald}"
    export HERALD_JWT_AUDIENCE="${HERALD_JWT_AUDIENCE:-herald}"
    export HERALD_API_ADDR="${HERALD_API_ADDR:-127.0.0.1:8080}"
    export HERALD_GATEWAY_ADDR="${HERALD_GATEWAY_ADDR:-127.0.0.1:8081}"
    export HERALD_WORKER_ADDR="${HERALD_WORKER_ADDR:-127.0.0.1:8082}"
    export RUST_LOG="${RUST_LOG:-info}"
    # The local stack is a development stack: serve the demo bell page.
    export HERALD_DEMO="${HERALD_DEMO:-true}"
    export HERALD_WEB_DIR="${HERALD_WEB_DIR:-$HS_ROOT/web}"
    # Development pages on other origins may embed Herald: the demo page (served by the
    # API, streaming from the gateway's port) and the examples in clients/js/examples
    # (Vite's dev server on :5173, a static server on :8000). Set it (even empty) to
    # override.
    export HERALD_CORS_ORIGINS="${HERALD_CORS_ORIGINS-http://$HERALD_API_ADDR,http://localhost:${HERALD_API_ADDR##*:},http://localhost:5173,http://127.0.0.1:5173,http://localhost:8000,http://127.0.0.1:8000}"

    if [[ -z "${HERALD_JWT_SECRET:-}" ]]; then
        mkdir -p "$HS_STATE_DIR"
        if [[ ! -s "$HS_SECRET_FILE" ]]; then
            # 32 random bytes as 64 hex characters; readable by the owner only.
            (
                umask 077
                od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$HS_SECRET_FILE"
            )
            log "generated a development JWT secret in ${HS_SECRET_FILE#"$HS_ROOT"/}"
        fi
        HERALD_JWT_SECRET=$(<"$HS_SECRET_FILE")
        export HERALD_JWT_SECRET
    fi

    HS_BIN_DIR="${HS_BIN_DIR:-$(cargo_target_dir)/debug}"
    export HS_BIN_DIR
}

# herald_save_env — record the services' environment in .herald/env (mode 600) so
# scripts/restart starts a service exactly as scripts/up did.
herald_save_env() {
    mkdir -p "$HS_STATE_DIR"
    local name
    (
        umask 077
        {
            echo "# Written by scripts/up on $(date -u +%Y-%m-%dT%H:%M:%SZ); sourced by scripts/restart."
            for name in $(compgen -e | LC_ALL=C sort); do
                case "$name" in
                HERALD_* | RUST_LOG | RUST_BACKTRACE | HS_BIN_DIR | HS_MODE)
                    printf 'export %s=%q\n' "$name" "${!name}"
                    ;;
                esac
            done
        } >"$HS_ENV_FILE"
    )
}

# herald_load_env — the environment scripts/up recorded; falls back to
# herald_prepare_env when scripts/up never ran here. Sets HS_MODE (a file written
# before the single mode existed is multi).
herald_load_env() {
    if [[ -f "$HS_ENV_FILE" ]]; then
        HS_MODE=''
        # shellcheck source=/dev/null
        source "$HS_ENV_FILE"
        HS_MODE="${HS_MODE:-multi}"
    else
        warn "no ${HS_ENV_FILE#"$HS_ROOT"/} (scripts/up has not run); using defaults"
        herald_prepare_env
    fi
}

# herald_build — build the binaries scripts/up and scripts/restart run (both modes, so
# switching modes needs no rebuild), with the development minter herald-token.
herald_build() {
    (cd "$HS_ROOT" && SQLX_OFFLINE=true cargo build -p herald -p herald-api -p herald-worker -p herald-gateway --bins)
}

# start_service SVC — launch SVC's binary (herald-SVC, or herald) in the background, detached from this terminal
# (own session, immune to SIGHUP), logging to .herald/logs/SVC.log, pid in
# .herald/pids/SVC.pid; the pid is also left in HS_LAST_PID. Does not wait for
# readiness (see wait_ready).
# shellcheck disable=SC2034 # read by the calling scripts
HS_LAST_PID=''
start_service() {
    local svc=$1
    local bin pidfile logfile port p
    bin="$HS_BIN_DIR/$(svc_bin "$svc")"
    pidfile=$(svc_pidfile "$svc")
    logfile=$(svc_logfile "$svc")
    [[ -x "$bin" ]] || die "$bin not found; build first (scripts/up builds it)"

    if svc_pid "$svc" >/dev/null; then
        die "$svc is already running (pid $(svc_pid "$svc")); stop it first"
    fi
    # Fail early and clearly when another process holds a port (herald binds all three).
    local -a ports_of=("$svc")
    [[ "$svc" == herald ]] && ports_of=(api gateway worker)
    for p in "${ports_of[@]}"; do
        port=$(svc_port "$p")
        if port_open 127.0.0.1 "$port"; then
            if have ss; then ss -ltnp "sport = :$port" >&2 || true; fi
            die "port $port (HERALD_${p^^}_ADDR=$(svc_addr "$p")) is already in use by another process"
        fi
    done

    mkdir -p "$(dirname "$pidfile")" "$(dirname "$logfile")"
    [[ -f "$logfile" ]] && mv -f "$logfile" "$logfile.prev"
    rm -f "$pidfile"

    # The inner bash writes its own pid, then exec's the binary (same pid), so the pid
    # file is right even if setsid had to fork.
    # shellcheck disable=SC2016 # $$ and $1 are for the inner shell
    setsid nohup bash -c 'echo $$ >"$1"; shift; exec "$@"' herald-launch "$pidfile" "$bin" \
        </dev/null >>"$logfile" 2>&1 &

    local i pid=''
    for ((i = 0; i < 50; i++)); do
        if [[ -s "$pidfile" ]]; then
            read -r pid <"$pidfile"
            break
        fi
        sleep 0.1
    done
    [[ -n "$pid" ]] || die "$svc did not start; see $logfile"
    # shellcheck disable=SC2034 # read by the calling scripts
    HS_LAST_PID=$pid
    log "started $svc (pid $pid, log ${logfile#"$HS_ROOT"/})"
}

# wait_ready SVC PID [TIMEOUT] — wait for GET /readyz (for herald: on the API and the
# gateway address); on failure show the log tail and exit.
wait_ready() {
    local svc=$1 pid=$2 timeout=${3:-60} url='' u
    local -a urls=("$(svc_url "$svc")/readyz")
    [[ "$svc" == herald ]] && urls+=("$(svc_url gateway)/readyz")
    for u in "${urls[@]}"; do
        if ! wait_http "$u" "$timeout" "$pid"; then
            url=$u
            break
        fi
    done
    if [[ -z "$url" ]]; then
        ok "$svc ready at $(svc_url "$svc")"
        return 0
    fi
    local logfile
    logfile=$(svc_logfile "$svc")
    warn "$svc did not become ready at $url; last lines of ${logfile#"$HS_ROOT"/}:"
    tail -n 40 "$logfile" >&2 || true
    die "$svc failed to start (stop everything with scripts/down)"
}
