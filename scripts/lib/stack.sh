# shellcheck shell=bash
#
# scripts/lib/stack.sh — a throw-away Herald stack for end-to-end tests (generated
# clients, browser tests, fault suites). Source it; do not execute it.
#
#     source "$(dirname "${BASH_SOURCE[0]}")/lib/stack.sh"
#     trap stack_stop EXIT
#     trap 'exit 130' INT; trap 'exit 143' TERM   # so the EXIT trap runs on ^C / kill
#     SQLX_OFFLINE=true cargo build --bins         # stack_start never builds
#     stack_start
#     curl "$STACK_API_URL/v1/..." -H "authorization: Bearer $(stack_token --sub alice)"
#
# Unlike scripts/up (one long-lived stack on the default ports, state in .herald/), every
# stack_start gets its own database, Redis channel prefix, JWT secret and free ports, so
# several stacks (and `scripts/up`) can run side by side on one machine against the same
# Postgres and Redis servers.
#
# Functions:
#   stack_start                   ensure Postgres and Redis (services.sh), create a fresh
#                                 database, pick free ports, export the HERALD_* settings,
#                                 start herald-api (wait /readyz), herald-worker (wait
#                                 /readyz) and herald-gateway (wait /readyz)
#   stack_stop [--keep-logs]      SIGTERM all three (SIGKILL after STACK_STOP_TIMEOUT),
#                                 drop the database, delete STACK_DIR unless --keep-logs
#                                 or STACK_KEEP_LOGS=1; idempotent, safe in an EXIT trap
#                                 (keeps the caller's exit status)
#   stack_restart SVC [--kill9]   stop SVC (api|worker|gateway) with SIGTERM (or SIGKILL)
#                                 and start it again on the same port; waits for /readyz
#   stack_restart_gateway [--kill9]   = stack_restart gateway [--kill9]
#   stack_kill SVC [--kill9]      stop one service and leave it down (fault tests)
#   stack_launch SVC              start a stopped service again; waits for /readyz
#   stack_token ARGS...           mint a JWT with herald-token for this stack's secret,
#                                 e.g. `stack_token --sub svc --scope publish`
#   stack_logs_tail [N]           print the last N (40) lines of each service log
#
# Exported after stack_start:
#   STACK_API_URL, STACK_GATEWAY_URL, STACK_WORKER_URL   http://127.0.0.1:<port>
#   STACK_API_PID, STACK_WORKER_PID, STACK_GATEWAY_PID   (updated by restarts)
#   STACK_DB                      the database name (herald_stack_<pid>_<n>)
#   STACK_DIR                     temp dir holding <svc>.log (and anything the caller
#                                 wants to put there)
#   STACK_BIN_DIR                 where the binaries are taken from
#   HERALD_DATABASE_URL, HERALD_REDIS_URL, HERALD_REDIS_PREFIX, HERALD_JWT_SECRET,
#   HERALD_JWT_AUDIENCE, HERALD_API_ADDR, HERALD_GATEWAY_ADDR, HERALD_WORKER_ADDR,
#   HERALD_DEMO=true, HERALD_WEB_DIR, HERALD_PUBLIC_GATEWAY_URL, and
#   HERALD_CORS_ORIGINS (the API's own origin, for the demo page) unless already set
#
# Knobs:
#   STACK_BIN_DIR        binaries (default: $CARGO_TARGET_DIR/debug, else target/debug)
#   STACK_READY_TIMEOUT  seconds to wait for each /readyz (default 60)
#   STACK_STOP_TIMEOUT   seconds of SIGTERM grace before SIGKILL (default 10)
#   STACK_KEEP_LOGS=1    stack_stop keeps STACK_DIR
#   STACK_PG_STANDBYS    host:port[,host:port…] listed after the primary in
#                        HERALD_DATABASE_URL (servers that may take over from it)
#   Any other HERALD_* variable set before stack_start (HERALD_HEARTBEAT,
#   HERALD_SHUTDOWN_GRACE, RUST_LOG, ...) reaches the services unchanged; the ones listed
#   above are always set by stack_start so that the stack is isolated.
#
# The services are children of the calling shell: do not call a bare `wait` while the
# stack runs. Binaries are not rebuilt here: build them before stack_start.

if [[ -n "${__HS_STACK_SH_LOADED:-}" ]]; then
    return 0
fi
__HS_STACK_SH_LOADED=1

# shellcheck source=scripts/lib/services.sh
source "$(dirname "${BASH_SOURCE[0]}")/services.sh"

STACK_SERVICES=(api worker gateway)
STACK_READY_TIMEOUT="${STACK_READY_TIMEOUT:-60}"
STACK_STOP_TIMEOUT="${STACK_STOP_TIMEOUT:-10}"
__STACK_STARTED=''
__STACK_USED_PORTS=' '

# __stack_bin_dir — the directory holding herald-api & co.
__stack_bin_dir() {
    if [[ -n "${STACK_BIN_DIR:-}" ]]; then
        printf '%s\n' "$STACK_BIN_DIR"
    elif [[ -n "${CARGO_TARGET_DIR:-}" ]]; then
        case "$CARGO_TARGET_DIR" in
        /*) printf '%s/debug\n' "$CARGO_TARGET_DIR" ;;
        *) printf '%s/%s/debug\n' "$HS_ROOT" "$CARGO_TARGET_DIR" ;;
        esac
    else
        printf '%s/target/debug\n' "$HS_ROOT"
    fi
}

# __stack_free_port — print a TCP port nobody listens on. Drawn below the usual
# ephemeral range (32768+), so an outgoing connection cannot be holding it either, and
# never one in __STACK_USED_PORTS (it runs in $(...): the caller records the port).
__stack_free_port() {
    local port i
    for ((i = 0; i < 200; i++)); do
        port=$((20000 + (RANDOM * 32768 + RANDOM) % 12000))
        [[ "$__STACK_USED_PORTS" == *" $port "* ]] && continue
        port_open 127.0.0.1 "$port" && continue
        printf '%s\n' "$port"
        return 0
    done
    die "stack: found no free TCP port in 20000-31999"
}

# __stack_var SVC SUFFIX — name of the per-service variable, e.g. STACK_API_PID.
__stack_var() { printf 'STACK_%s_%s\n' "${1^^}" "$2"; }

# __stack_url SVC — http://127.0.0.1:<port> of SVC.
__stack_url() {
    local v
    v=$(__stack_var "$1" URL)
    printf '%s\n' "${!v}"
}

__stack_check_svc() {
    case "${1:-}" in
    api | worker | gateway) ;;
    *) die "stack: unknown service '${1:-}' (api, worker or gateway)" ;;
    esac
}

# stack_launch SVC — start herald-SVC in the background (log: $STACK_DIR/SVC.log) and
# wait for its /readyz; on failure print the log tail and exit.
stack_launch() {
    local svc=${1:?usage: stack_launch SVC}
    __stack_check_svc "$svc"
    local bin log url pid pidvar port
    bin="$STACK_BIN_DIR/herald-$svc"
    log="$STACK_DIR/$svc.log"
    url=$(__stack_url "$svc")
    port=${url##*:}
    [[ -x "$bin" ]] || die "stack: $bin not found; build first (SQLX_OFFLINE=true cargo build --bins)"
    if port_open 127.0.0.1 "$port"; then
        die "stack: port $port for $svc is already in use by another process"
    fi
    {
        printf -- '--- %s: starting %s\n' "$(date -u +%H:%M:%S.%3N)" "$bin"
    } >>"$log"
    # cwd = repository root: the API reads the demo page from web/ (HERALD_WEB_DIR).
    (cd "$HS_ROOT" && exec "$bin") </dev/null >>"$log" 2>&1 &
    pid=$!
    pidvar=$(__stack_var "$svc" PID)
    printf -v "$pidvar" '%s' "$pid"
    export "${pidvar?}"
    if ! wait_http "$url/readyz" "$STACK_READY_TIMEOUT" "$pid"; then
        warn "stack: $svc did not become ready at $url/readyz; last lines of $log:"
        tail -n 40 "$log" >&2 || true
        die "stack: $svc failed to start"
    fi
    ok "stack: $svc ready at $url (pid $pid)"
}

# stack_kill SVC [--kill9] — stop SVC (SIGTERM, SIGKILL after STACK_STOP_TIMEOUT; or
# SIGKILL at once) and wait until the process is gone and its port is free.
stack_kill() {
    local svc=${1:?usage: stack_kill SVC [--kill9]} sig=TERM
    __stack_check_svc "$svc"
    case "${2:-}" in
    '') ;;
    --kill9 | --kill-9 | -9) sig=KILL ;;
    *) die "stack_kill: unknown option '$2'" ;;
    esac
    local pidvar pid url port
    pidvar=$(__stack_var "$svc" PID)
    pid=${!pidvar:-}
    url=$(__stack_url "$svc")
    port=${url##*:}
    if [[ -n "$pid" ]] && pid_alive "$pid"; then
        log "stack: stopping $svc (pid $pid, SIG$sig)"
        kill -s "$sig" "$pid" 2>/dev/null || true
        local deadline=$((SECONDS + STACK_STOP_TIMEOUT))
        while pid_alive "$pid"; do
            if ((SECONDS >= deadline)) && [[ "$sig" != KILL ]]; then
                warn "stack: $svc (pid $pid) still running after ${STACK_STOP_TIMEOUT}s; sending SIGKILL"
                sig=KILL
                kill -s KILL "$pid" 2>/dev/null || true
            fi
            sleep 0.1
        done
    fi
    # Reap it (it is our child) so it does not linger as a zombie.
    if [[ -n "$pid" ]]; then
        wait "$pid" 2>/dev/null || true
    fi
    printf -v "$pidvar" '%s' ''
    wait_until 10 eval "! port_open 127.0.0.1 $port" ||
        die "stack: port $port of $svc still accepts connections after its process exited"
    return 0
}

# stack_restart SVC [--kill9] — stop SVC and start it again on the same port.
stack_restart() {
    local svc=${1:?usage: stack_restart SVC [--kill9]}
    stack_kill "$svc" "${2:-}"
    stack_launch "$svc"
}

# stack_restart_gateway [--kill9]
stack_restart_gateway() { stack_restart gateway "${1:-}"; }

# stack_token ARGS... — mint a JWT for this stack (herald-token reads HERALD_JWT_SECRET
# and HERALD_JWT_AUDIENCE from the environment stack_start exported).
stack_token() {
    "${STACK_BIN_DIR:-$(__stack_bin_dir)}/herald-token" "$@"
}

# stack_logs_tail [N] — the last N lines of every service log, to stderr.
stack_logs_tail() {
    local n=${1:-40} svc
    [[ -n "${STACK_DIR:-}" && -d "$STACK_DIR" ]] || return 0
    for svc in "${STACK_SERVICES[@]}"; do
        [[ -f "$STACK_DIR/$svc.log" ]] || continue
        printf '\n--- last %s lines of %s ---\n' "$n" "$STACK_DIR/$svc.log" >&2
        tail -n "$n" "$STACK_DIR/$svc.log" >&2 || true
    done
}

# stack_start — see the header.
stack_start() {
    [[ -z "$__STACK_STARTED" ]] || die "stack_start: a stack is already running in this shell"
    __STACK_STARTED=1

    ensure_postgres
    ensure_redis

    STACK_BIN_DIR=$(__stack_bin_dir)
    export STACK_BIN_DIR
    local svc
    for svc in "${STACK_SERVICES[@]}" token; do
        [[ -x "$STACK_BIN_DIR/herald-$svc" ]] ||
            die "stack: $STACK_BIN_DIR/herald-$svc not found; build first (SQLX_OFFLINE=true cargo build --bins)"
    done

    STACK_DIR=$(mktemp -d "${TMPDIR:-/tmp}/herald-stack.XXXXXX")
    export STACK_DIR

    # A fresh database; the API applies the migrations when it starts.
    STACK_DB="herald_stack_$$_${RANDOM}"
    export STACK_DB
    recreate_database "$STACK_DB" || die "stack: could not create database $STACK_DB"
    log "stack: database $STACK_DB, logs in $STACK_DIR"

    local api_port gateway_port worker_port secret
    api_port=$(__stack_free_port)
    __STACK_USED_PORTS+="$api_port "
    gateway_port=$(__stack_free_port)
    __STACK_USED_PORTS+="$gateway_port "
    worker_port=$(__stack_free_port)
    __STACK_USED_PORTS+="$worker_port "
    secret=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')

    export HERALD_DATABASE_URL="postgres://$HS_PG_USER@$HS_PG_HOST:$HS_PG_PORT${STACK_PG_STANDBYS:+,$STACK_PG_STANDBYS}/$STACK_DB"
    export HERALD_REDIS_URL="redis://$HS_REDIS_HOST:$HS_REDIS_PORT"
    export HERALD_REDIS_PREFIX="herald-stack-$$-$RANDOM"
    export HERALD_JWT_SECRET="$secret"
    export HERALD_JWT_AUDIENCE="${HERALD_JWT_AUDIENCE:-herald}"
    export HERALD_API_ADDR="127.0.0.1:$api_port"
    export HERALD_GATEWAY_ADDR="127.0.0.1:$gateway_port"
    export HERALD_WORKER_ADDR="127.0.0.1:$worker_port"
    export HERALD_DEMO=true
    export HERALD_WEB_DIR="$HS_ROOT/web"
    export HERALD_PUBLIC_GATEWAY_URL="http://127.0.0.1:$gateway_port"
    # The demo page is served by the API and streams from the gateway, another origin:
    # allow it, unless the caller chose the origins (set, even empty).
    export HERALD_CORS_ORIGINS="${HERALD_CORS_ORIGINS-http://127.0.0.1:$api_port}"

    export STACK_API_URL="http://127.0.0.1:$api_port"
    export STACK_GATEWAY_URL="http://127.0.0.1:$gateway_port"
    export STACK_WORKER_URL="http://127.0.0.1:$worker_port"
    export STACK_API_PID='' STACK_WORKER_PID='' STACK_GATEWAY_PID=''

    # The API migrates the fresh database, so it goes first.
    for svc in "${STACK_SERVICES[@]}"; do
        stack_launch "$svc"
    done
    ok "stack: up — api $STACK_API_URL, gateway $STACK_GATEWAY_URL"
}

# stack_stop [--keep-logs] — see the header. Keeps the exit status it was called with.
stack_stop() {
    local rc=$? keep=${STACK_KEEP_LOGS:-0}
    [[ "${1:-}" == --keep-logs ]] && keep=1
    [[ -n "$__STACK_STARTED" ]] || return "$rc"
    __STACK_STARTED=''

    # SIGTERM everything at once, then wait (SIGKILL after the grace period).
    local svc pidvar pid
    local -a pids=()
    for svc in gateway worker api; do
        pidvar=$(__stack_var "$svc" PID)
        pid=${!pidvar:-}
        if [[ -n "$pid" ]] && pid_alive "$pid"; then
            kill -s TERM "$pid" 2>/dev/null || true
            pids+=("$pid")
        fi
    done
    local deadline=$((SECONDS + STACK_STOP_TIMEOUT))
    local -a alive=()
    while true; do
        alive=()
        for pid in "${pids[@]}"; do
            pid_alive "$pid" && alive+=("$pid")
        done
        ((${#alive[@]} == 0)) && break
        if ((SECONDS >= deadline)); then
            warn "stack: still running after ${STACK_STOP_TIMEOUT}s, sending SIGKILL: ${alive[*]}"
            kill -s KILL "${alive[@]}" 2>/dev/null || true
            sleep 0.2
            break
        fi
        sleep 0.1
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    export STACK_API_PID='' STACK_WORKER_PID='' STACK_GATEWAY_PID=''

    if [[ -n "${STACK_DB:-}" ]]; then
        PGOPTIONS="-c client_min_messages=warning" dropdb -w -h "$HS_PG_HOST" -p "$HS_PG_PORT" \
            -U "$HS_PG_USER" --if-exists --force "$STACK_DB" 2>/dev/null ||
            warn "stack: could not drop database $STACK_DB"
    fi
    if [[ -n "${STACK_DIR:-}" && -d "$STACK_DIR" ]]; then
        if [[ "$keep" == 1 ]]; then
            log "stack: stopped; logs kept in $STACK_DIR"
        else
            rm -rf -- "$STACK_DIR"
            log "stack: stopped and cleaned up"
        fi
    fi
    return "$rc"
}
