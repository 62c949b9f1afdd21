# shellcheck shell=bash
#
# scripts/lib/services.sh — helpers shared by Herald's operational scripts.
#
# Source it (do not execute it):
#
#     source "$(dirname "$0")/lib/services.sh"
#
# What it provides:
#   log / info / ok / warn / die / step     logging to stderr
#   have CMD                                is CMD on PATH?
#   port_open HOST PORT                     is something listening there? (bash /dev/tcp)
#   ensure_postgres                         make a local PostgreSQL reachable on 127.0.0.1:5432
#                                           with passwordless access for user `postgres`
#   ensure_redis                            make a local Redis answer PING on 127.0.0.1:6379
#   ensure_database NAME                    create database NAME unless it exists
#   recreate_database NAME                  drop (forcibly) and create database NAME
#   psql_admin ARGS...                      psql as postgres against the local server
#   http_ok URL                             one GET; succeeds on a 2xx answer
#   wait_http URL TIMEOUT_SECONDS [PID]     poll URL until 2xx (PID: give up early if it dies)
#   pid_alive PID                           the process exists and is not a zombie
#   ensure_push_venv                        the Web Push stand-in's Python venv
#                                           (.herald/push-venv); prints its python
#
# Every ensure_* function is idempotent: when the service already answers it does
# nothing; on a fresh Debian box it installs the Debian package and starts the server
# in the foreground-less way that works without systemd (containers, CI sandboxes).
#
# Knobs (environment, all optional):
#   HS_PG_HOST / HS_PG_PORT / HS_PG_USER    default 127.0.0.1 / 5432 / postgres
#   HS_REDIS_HOST / HS_REDIS_PORT           default 127.0.0.1 / 6379
#   HS_SKIP_SERVICES=1                      make ensure_postgres/ensure_redis only check,
#                                           never install or start anything
#   HS_PG_PRIVATE_LISTEN                    listen_addresses of private clusters
#                                           (default 127.0.0.1; add the root-side address
#                                           of a namespace's link, scripts/lib/netns.sh)
#   HS_PG_PRIVATE_TRUST                     a CIDR private clusters also trust, e.g. a
#                                           namespace subnet (set before pg_private_init)
#
# Internal variables use the HS_ prefix (not HERALD_) so they never collide with the
# services' own HERALD_* configuration namespace.

# Sourcing twice is harmless.
if [[ -n "${__HS_SERVICES_SH_LOADED:-}" ]]; then
    return 0
fi
__HS_SERVICES_SH_LOADED=1

# Repository root: this file lives in <root>/scripts/lib/.
HS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# Run-time state of the local stack (logs, pids, dev secret); git-ignored.
HS_STATE_DIR="${HS_STATE_DIR:-$HS_ROOT/.herald}"

HS_PG_HOST="${HS_PG_HOST:-127.0.0.1}"
HS_PG_PORT="${HS_PG_PORT:-5432}"
HS_PG_USER="${HS_PG_USER:-postgres}"
HS_REDIS_HOST="${HS_REDIS_HOST:-127.0.0.1}"
HS_REDIS_PORT="${HS_REDIS_PORT:-6379}"

# ---------------------------------------------------------------------------------
# Logging
# ---------------------------------------------------------------------------------

if [[ -t 2 && -z "${NO_COLOR:-}" ]]; then
    __HS_C_DIM=$'\e[2m' __HS_C_BOLD=$'\e[1m' __HS_C_RED=$'\e[31m'
    __HS_C_GREEN=$'\e[32m' __HS_C_YELLOW=$'\e[33m' __HS_C_OFF=$'\e[0m'
else
    __HS_C_DIM='' __HS_C_BOLD='' __HS_C_RED='' __HS_C_GREEN='' __HS_C_YELLOW='' __HS_C_OFF=''
fi

# log MESSAGE... — plain progress line.
log() { printf '%s[herald]%s %s\n' "$__HS_C_DIM" "$__HS_C_OFF" "$*" >&2; }
# info is an alias kept for readability at call sites.
info() { log "$@"; }
# ok MESSAGE... — something is confirmed to be in the wanted state.
ok() { printf '%s[herald]%s %s✓%s %s\n' "$__HS_C_DIM" "$__HS_C_OFF" "$__HS_C_GREEN" "$__HS_C_OFF" "$*" >&2; }
# warn MESSAGE... — not fatal.
warn() { printf '%s[herald] warning:%s %s\n' "$__HS_C_YELLOW" "$__HS_C_OFF" "$*" >&2; }
# die MESSAGE... — fatal: print and exit 1 (exits the calling script).
die() {
    printf '%s[herald] error:%s %s\n' "$__HS_C_RED" "$__HS_C_OFF" "$*" >&2
    exit 1
}
# step TITLE — a section header, so long outputs (CI logs) are easy to scan.
step() { printf '\n%s==> %s%s\n' "$__HS_C_BOLD" "$*" "$__HS_C_OFF" >&2; }

# ---------------------------------------------------------------------------------
# Small utilities
# ---------------------------------------------------------------------------------

# have CMD — true when CMD is on PATH.
have() { command -v "$1" >/dev/null 2>&1; }

# as_root CMD... — run CMD as root (directly when we are root, else through sudo).
as_root() {
    if ((EUID == 0)); then
        "$@"
    elif have sudo; then
        sudo "$@"
    else
        die "need root to run: $* (no sudo available)"
    fi
}

# apt_install PKG... — install Debian packages; runs `apt-get update` once per process.
__HS_APT_UPDATED=''
apt_install() {
    [[ "${HS_SKIP_SERVICES:-}" == 1 ]] && die "HS_SKIP_SERVICES=1 but packages are missing: $*"
    have apt-get || die "packages $* are missing and this is not a Debian/Ubuntu machine; install them by hand"
    if [[ -z "$__HS_APT_UPDATED" ]]; then
        log "apt-get update"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        __HS_APT_UPDATED=1
    fi
    log "apt-get install $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# port_open HOST PORT — true when a TCP connect to HOST:PORT succeeds within 2 s.
port_open() {
    local host=$1 port=$2
    host=${host#[}
    host=${host%]}
    # shellcheck disable=SC2016 # $1/$2 belong to the inner shell
    timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' port-probe "$host" "$port" 2>/dev/null
}

# pid_alive PID — the process exists and is not a zombie.
pid_alive() {
    local stat
    [[ "$1" =~ ^[0-9]+$ ]] || return 1
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    # Field 3 (state) follows the command name, which is in parentheses and may contain spaces.
    stat=${stat##*) }
    [[ "${stat:0:1}" != Z ]]
}

# wait_until TIMEOUT_SECONDS CMD... — poll CMD every 0.5 s until it succeeds.
wait_until() {
    local timeout=$1
    shift
    local deadline=$((SECONDS + timeout))
    until "$@"; do
        ((SECONDS >= deadline)) && return 1
        sleep 0.5
    done
}

# ---------------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------------

# pg_reachable — the server accepts connections on HS_PG_HOST:HS_PG_PORT.
pg_reachable() {
    if have pg_isready; then
        pg_isready -q -h "$HS_PG_HOST" -p "$HS_PG_PORT" -t 2 >/dev/null 2>&1
    else
        port_open "$HS_PG_HOST" "$HS_PG_PORT"
    fi
}

# psql_admin ARGS... — psql as the admin user over TCP, never prompting for a password.
psql_admin() {
    PGCONNECT_TIMEOUT="${PGCONNECT_TIMEOUT:-5}" psql -X -w -v ON_ERROR_STOP=1 \
        -h "$HS_PG_HOST" -p "$HS_PG_PORT" -U "$HS_PG_USER" "$@"
}

# pg_can_login — the admin user can run a query without a password.
pg_can_login() {
    [[ "$(psql_admin -d postgres -Atqc 'select 1' 2>/dev/null)" == 1 ]]
}

# pg_local_cluster — print "VERSION NAME" of the Debian-managed cluster configured for
# HS_PG_PORT (else the first cluster). Fails when postgresql-common knows no cluster.
pg_local_cluster() {
    have pg_lsclusters || return 1
    local line
    line=$(pg_lsclusters -h 2>/dev/null | awk -v p="$HS_PG_PORT" '$3 == p { print $1, $2; exit }')
    if [[ -z "$line" ]]; then
        line=$(pg_lsclusters -h 2>/dev/null | awk 'NR == 1 { print $1, $2 }')
    fi
    [[ -n "$line" ]] || return 1
    printf '%s\n' "$line"
}

# pg_trust_local VERSION NAME — development-only: let every local connection in without a
# password (Debian's default pg_hba.conf uses peer for the socket and scram-sha-256 for
# TCP). Prepends a marked block (first matching line wins in pg_hba.conf), keeps a
# backup, and is a no-op when the block is already there. Caller reloads the server.
pg_trust_local() {
    local ver=$1 name=$2
    local hba="/etc/postgresql/$ver/$name/pg_hba.conf"
    [[ -f "$hba" ]] || die "cannot find $hba to enable local trust authentication"
    if grep -q '^# herald-dev-trust' "$hba"; then
        return 0
    fi
    warn "enabling passwordless (trust) access to Postgres from localhost in $hba — development machines only"
    as_root cp -p "$hba" "$hba.herald-backup"
    local tmp
    tmp=$(mktemp)
    {
        echo '# herald-dev-trust: added by Herald scripts/lib/services.sh for local development.'
        echo 'local   all   all                 trust'
        echo 'host    all   all   127.0.0.1/32  trust'
        echo 'host    all   all   ::1/128       trust'
        echo '# end herald-dev-trust'
        cat "$hba"
    } >"$tmp"
    # `cat >` keeps the original owner and mode of pg_hba.conf.
    # shellcheck disable=SC2016 # $1/$2 belong to the inner shell
    as_root sh -c 'cat "$1" > "$2"' sh "$tmp" "$hba"
    rm -f "$tmp"
}

# pg_ctl_cluster VERSION NAME ACTION — pg_ctlcluster that never hands over to systemctl
# (there is no systemd in containers).
pg_ctl_cluster() {
    as_root pg_ctlcluster --skip-systemctl-redirect "$1" "$2" "$3"
}

# ensure_postgres — PostgreSQL answers on HS_PG_HOST:HS_PG_PORT and user `postgres` can
# log in over TCP without a password. Installs and starts a local cluster when needed.
ensure_postgres() {
    local cluster ver name

    if pg_reachable; then
        have psql || apt_install postgresql-client
        if pg_can_login; then
            ok "Postgres is up at $HS_PG_HOST:$HS_PG_PORT"
            return 0
        fi
        # Reachable but it wants a password: a server this script did not start is
        # someone's own, and its configuration is theirs (never edited or reloaded here).
        die "Postgres at $HS_PG_HOST:$HS_PG_PORT is up but user '$HS_PG_USER' cannot log in without a password." \
            "Allow trust auth for localhost in pg_hba.conf, or set PGPASSWORD."
    fi

    [[ "${HS_SKIP_SERVICES:-}" == 1 ]] && die "Postgres is not reachable at $HS_PG_HOST:$HS_PG_PORT (HS_SKIP_SERVICES=1)"
    log "Postgres is not reachable at $HS_PG_HOST:$HS_PG_PORT; starting a local one"

    # 1. Install the server when it is missing (Debian's postgresql pulls in the client
    #    and postgresql-common, whose postinst creates the default cluster).
    if ! compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || ! have pg_ctlcluster; then
        apt_install postgresql
    fi

    # 2. Find (or create) the cluster. The package may have been installed with cluster
    #    creation disabled, or the cluster deleted by hand.
    if ! cluster=$(pg_local_cluster); then
        ver=$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -n 1)
        [[ -n "$ver" ]] || die "PostgreSQL server binaries not found under /usr/lib/postgresql"
        log "creating cluster $ver/main on port $HS_PG_PORT"
        as_root pg_createcluster --port "$HS_PG_PORT" "$ver" main >/dev/null
        cluster="$ver main"
    fi
    read -r ver name <<<"$cluster"

    # 3. Start it unless it already runs (e.g. on another address). /run is a tmpfs in
    #    many containers, so the socket directory may have vanished since install.
    as_root install -d -o postgres -g postgres -m 2775 /var/run/postgresql
    if ! as_root pg_ctlcluster "$ver" "$name" status >/dev/null 2>&1; then
        log "starting cluster $ver/$name"
        pg_ctl_cluster "$ver" "$name" start
    fi
    wait_until 30 pg_reachable ||
        die "Postgres cluster $ver/$name did not come up on $HS_PG_HOST:$HS_PG_PORT; see /var/log/postgresql/postgresql-$ver-$name.log"

    # 4. A fresh Debian install only allows password (scram) logins over TCP.
    if ! pg_can_login; then
        pg_trust_local "$ver" "$name"
        pg_ctl_cluster "$ver" "$name" reload
        wait_until 10 pg_can_login ||
            die "user '$HS_PG_USER' still cannot log in to Postgres at $HS_PG_HOST:$HS_PG_PORT; check pg_hba.conf"
    fi
    ok "Postgres started ($ver/$name at $HS_PG_HOST:$HS_PG_PORT)"
}

# __hs_check_db_name NAME — only plain identifiers: they are spliced into SQL.
__hs_check_db_name() {
    [[ "$1" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die "invalid database name '$1' (letters, digits and _ only)"
}

# database_exists NAME
database_exists() {
    __hs_check_db_name "$1"
    [[ "$(psql_admin -d postgres -Atqc "select 1 from pg_database where datname = '$1'")" == 1 ]]
}

# ensure_database NAME — create database NAME (owned by the admin user) unless it exists.
ensure_database() {
    local db=${1:?usage: ensure_database NAME}
    __hs_check_db_name "$db"
    if database_exists "$db"; then
        ok "database '$db' exists"
        return 0
    fi
    log "creating database '$db'"
    # Another process may create it concurrently: only a still-missing database is an error.
    createdb -w -h "$HS_PG_HOST" -p "$HS_PG_PORT" -U "$HS_PG_USER" "$db" 2>/dev/null ||
        database_exists "$db" || die "could not create database '$db'"
    ok "database '$db' created"
}

# recreate_database NAME — drop NAME (disconnecting its sessions) and create it empty.
recreate_database() {
    local db=${1:?usage: recreate_database NAME}
    __hs_check_db_name "$db"
    PGOPTIONS="-c client_min_messages=warning" dropdb -w -h "$HS_PG_HOST" -p "$HS_PG_PORT" -U "$HS_PG_USER" --if-exists --force "$db"
    createdb -w -h "$HS_PG_HOST" -p "$HS_PG_PORT" -U "$HS_PG_USER" "$db"
    ok "database '$db' recreated"
}

# ---------------------------------------------------------------------------------
# A private PostgreSQL cluster: its own data directory and port, created, faulted and
# removed by the script that needs it. Faults against Postgres never touch a server the
# script did not create (the machine's may serve other projects).
# ---------------------------------------------------------------------------------

# pg_bin_dir — the newest installed PostgreSQL server binaries (installs them if none).
pg_bin_dir() {
    local dir
    dir=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)
    if [[ -z "$dir" ]]; then
        apt_install postgresql
        dir=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)
    fi
    [[ -x "$dir/initdb" && -x "$dir/pg_ctl" ]] || die "PostgreSQL server binaries not found under /usr/lib/postgresql"
    printf '%s\n' "$dir"
}

# as_pg_owner CMD... — run CMD as the owner of private clusters: `postgres` when we are
# root (initdb and the server refuse to run as root), ourselves otherwise.
as_pg_owner() {
    if ((EUID == 0)); then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

# pg_private_init DIR — a new cluster in DIR/data: trust authentication, UTF-8, owned
# by the cluster owner. DIR (and its parents) must be traversable by that owner.
pg_private_init() {
    local dir=${1:?usage: pg_private_init DIR} bin
    bin=$(pg_bin_dir)
    mkdir -p "$dir"
    if ((EUID == 0)); then
        chown postgres:postgres "$dir"
    fi
    as_pg_owner "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 >"$dir/initdb.log" 2>&1 || {
        cat "$dir/initdb.log" >&2
        die "initdb of a private Postgres cluster in $dir failed"
    }
    if [[ -n "${HS_PG_PRIVATE_TRUST:-}" ]]; then
        # A standby's pg_basebackup copies this file.
        printf 'host all all %s trust\n' "$HS_PG_PRIVATE_TRUST" >>"$dir/data/pg_hba.conf"
    fi
}

# pg_private_ctl DIR PORT start|stop|restart|kill — control the private cluster in DIR,
# listening on 127.0.0.1:PORT (and HS_PG_PRIVATE_LISTEN's addresses; its socket in DIR).
# `kill` is an immediate shutdown (no checkpoint, as after a crash). Waits until the action is done.
pg_private_ctl() {
    local dir=${1:?} port=${2:?} action=${3:?} bin
    bin=$(pg_bin_dir)
    local opts="-p $port -k $dir -c listen_addresses=${HS_PG_PRIVATE_LISTEN:-127.0.0.1}"
    case "$action" in
    start | restart)
        as_pg_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -o "$opts" -w -t 60 "$action" >/dev/null
        ;;
    stop) as_pg_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null ;;
    kill) as_pg_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w -t 60 stop >/dev/null ;;
    *) die "pg_private_ctl: unknown action '$action'" ;;
    esac
}

# pg_private_remove DIR PORT — stop the private cluster in DIR (if it runs) and delete it.
pg_private_remove() {
    local dir=${1:?} port=${2:?}
    [[ -d "$dir/data" ]] || return 0
    pg_private_ctl "$dir" "$port" kill 2>/dev/null || true
    rm -rf -- "$dir"
}

# pg_private_psql PORT ARGS... — psql as postgres on a private cluster's port, no prompt.
pg_private_psql() {
    local port=${1:?}
    shift
    PGCONNECT_TIMEOUT=5 psql -X -w -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres "$@"
}

# pg_private_standby DIR PORT PRIMARY_PORT — a streaming standby of the private primary
# on PRIMARY_PORT, in DIR/data (pg_basebackup -R: standby.signal and primary_conninfo),
# replicating through the physical slot `herald_standby` (made again on the primary),
# started on PORT; waits until the primary shows it streaming. Whether it is synchronous
# is the primary's choice: see pg_private_sync.
pg_private_standby() {
    local dir=${1:?} port=${2:?} primary=${3:?} bin
    bin=$(pg_bin_dir)
    mkdir -p "$dir"
    if ((EUID == 0)); then
        chown postgres:postgres "$dir"
    fi
    pg_private_psql "$primary" -d postgres -Atc \
        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = 'herald_standby'" >/dev/null
    as_pg_owner "$bin/pg_basebackup" -D "$dir/data" -h 127.0.0.1 -p "$primary" -U postgres -w \
        -c fast -X stream -R -C -S herald_standby >"$dir/basebackup.log" 2>&1 || {
        cat "$dir/basebackup.log" >&2
        die "pg_basebackup of the private primary on port $primary failed"
    }
    pg_private_ctl "$dir" "$port" start
    wait_until 30 __pg_private_streaming "$primary" ||
        die "the standby on port $port does not stream from the primary on port $primary"
}

__pg_private_streaming() {
    [[ "$(pg_private_psql "$1" -d postgres -Atc \
        "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'${2:+ AND sync_state = '$2'}" 2>/dev/null)" -ge 1 ]]
}

# pg_private_sync PORT on|off — make the private primary on PORT wait for its standby
# (`synchronous_standby_names = '*'`, `synchronous_commit = on`) or not. Set with ALTER
# SYSTEM after the standby was copied, so that the standby, once promoted, does not wait
# for a standby of its own. `on` waits until the standby is synchronous.
pg_private_sync() {
    local port=${1:?} mode=${2:?}
    if [[ "$mode" == on ]]; then
        pg_private_psql "$port" -d postgres -c "ALTER SYSTEM SET synchronous_standby_names = '*'" \
            -c "ALTER SYSTEM SET synchronous_commit = 'on'" -c "SELECT pg_reload_conf()" >/dev/null
        wait_until 30 __pg_private_streaming "$port" sync ||
            die "the standby of the primary on port $port did not become synchronous"
    else
        pg_private_psql "$port" -d postgres -c "ALTER SYSTEM RESET synchronous_standby_names" \
            -c "SELECT pg_reload_conf()" >/dev/null
    fi
}

# pg_private_sigkill DIR — SIGKILL the postmaster of the private cluster in DIR and every
# process it started, at once (a machine that died: no shutdown, no last WAL sent).
pg_private_sigkill() {
    local dir=${1:?} pid children
    pid=$(head -n 1 "$dir/data/postmaster.pid" 2>/dev/null || true)
    [[ -n "$pid" ]] && pid_alive "$pid" || die "pg_private_sigkill: no postmaster runs in $dir"
    children=$(ps -o pid= --ppid "$pid" | tr '\n' ' ')
    # shellcheck disable=SC2086 # one word per pid
    kill -s KILL "$pid" $children 2>/dev/null || true
    wait_until 10 eval "! pid_alive $pid" || die "pg_private_sigkill: postmaster $pid survived SIGKILL"
}

# pg_private_promote DIR — promote the standby in DIR; waits until it accepts writes.
pg_private_promote() {
    local dir=${1:?}
    as_pg_owner "$(pg_bin_dir)/pg_ctl" -D "$dir/data" -w -t 60 promote >/dev/null
}

# ---------------------------------------------------------------------------------
# Redis
# ---------------------------------------------------------------------------------

# redis_ping — the server at HS_REDIS_HOST:HS_REDIS_PORT answers PING with PONG.
redis_ping() {
    if have redis-cli; then
        [[ "$(timeout 3 redis-cli -h "$HS_REDIS_HOST" -p "$HS_REDIS_PORT" ping 2>/dev/null)" == PONG ]]
    else
        # Inline RESP: send PING, expect "+PONG".
        # shellcheck disable=SC2016 # $1/$2 belong to the inner shell
        timeout 3 bash -c '
            exec 3<>"/dev/tcp/$1/$2" || exit 1
            printf "PING\r\n" >&3
            IFS= read -r reply <&3
            [[ "$reply" == "+PONG"* ]]
        ' redis-probe "$HS_REDIS_HOST" "$HS_REDIS_PORT" 2>/dev/null
    fi
}

# ensure_redis — Redis answers PING on HS_REDIS_HOST:HS_REDIS_PORT; installs and starts a
# throw-away local one (no persistence, loopback only) when needed.
ensure_redis() {
    if redis_ping; then
        ok "Redis is up at $HS_REDIS_HOST:$HS_REDIS_PORT"
        return 0
    fi
    if port_open "$HS_REDIS_HOST" "$HS_REDIS_PORT"; then
        die "something listens on $HS_REDIS_HOST:$HS_REDIS_PORT but does not answer PING (Redis with a password?)"
    fi
    [[ "${HS_SKIP_SERVICES:-}" == 1 ]] && die "Redis is not reachable at $HS_REDIS_HOST:$HS_REDIS_PORT (HS_SKIP_SERVICES=1)"
    log "Redis is not reachable at $HS_REDIS_HOST:$HS_REDIS_PORT; starting a local one"

    if ! have redis-server; then
        apt_install redis-server redis-tools
        # The package's postinst may have started its own instance already.
        if wait_until 3 redis_ping; then
            ok "Redis is up at $HS_REDIS_HOST:$HS_REDIS_PORT"
            return 0
        fi
    fi

    # Loopback only ("-::1": IPv6 loopback if available), nothing written to disk.
    local logfile="${TMPDIR:-/tmp}/herald-redis-$HS_REDIS_PORT.log"
    redis-server --daemonize yes \
        --bind 127.0.0.1 -::1 --port "$HS_REDIS_PORT" \
        --save "" --appendonly no \
        --dir "${TMPDIR:-/tmp}" --logfile "$logfile" ||
        die "redis-server failed to start; see $logfile"
    wait_until 15 redis_ping || die "Redis did not answer PING within 15 s; see $logfile"
    ok "Redis started at $HS_REDIS_HOST:$HS_REDIS_PORT (log: $logfile)"
}

# ---------------------------------------------------------------------------------
# HTTP readiness
# ---------------------------------------------------------------------------------

# http_ok URL — one GET with a 3 s budget; true on a 2xx status.
http_ok() {
    local url=$1
    if have curl; then
        curl -fsS -o /dev/null --max-time 3 "$url" 2>/dev/null
        return
    fi
    # Fallback without curl: plain http://host[:port][/path] over bash /dev/tcp.
    local re='^http://(\[[^]]+\]|[^/:]+)(:([0-9]+))?(/.*)?$'
    [[ "$url" =~ $re ]] || die "http_ok: cannot parse '$url' (curl not installed)"
    local host=${BASH_REMATCH[1]} port=${BASH_REMATCH[3]:-80} path=${BASH_REMATCH[4]:-/}
    host=${host#[}
    host=${host%]}
    # shellcheck disable=SC2016 # $1..$3 belong to the inner shell
    timeout 3 bash -c '
        exec 3<>"/dev/tcp/$1/$2" || exit 1
        printf "GET %s HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n" "$3" "$1" >&3
        read -r _ status _ <&3
        [[ "$status" == 2?? ]]
    ' http-probe "$host" "$port" "$path" 2>/dev/null
}

# wait_http URL TIMEOUT_SECONDS [PID] — poll URL every 0.5 s until it answers 2xx.
# Returns 0 when ready, 1 on timeout, 2 as soon as process PID (if given) is gone.
wait_http() {
    local url=${1:?usage: wait_http URL TIMEOUT_SECONDS [PID]} timeout=${2:-30} pid=${3:-}
    local deadline=$((SECONDS + timeout))
    while true; do
        if http_ok "$url"; then
            return 0
        fi
        if [[ -n "$pid" ]] && ! pid_alive "$pid"; then
            warn "process $pid exited while waiting for $url"
            return 2
        fi
        if ((SECONDS >= deadline)); then
            warn "$url not ready after ${timeout}s"
            return 1
        fi
        sleep 0.5
    done
}

# ---------------------------------------------------------------------------------
# The Web Push stand-in's Python
# ---------------------------------------------------------------------------------

# ensure_push_venv — a venv with what crates/test-support/push_service.py needs (an
# implementation of VAPID and aes128gcm independent of Herald's: http_ece,
# cryptography), recreated when its requirements or the interpreter change. Prints the
# venv's python. Used by scripts/test (the Rust push tests) and scripts/browser-test.
ensure_push_venv() {
    local venv="$HS_STATE_DIR/push-venv"
    local reqs="$HS_ROOT/crates/test-support/push-requirements.txt"
    local sum
    sum=$( (sha256sum "$reqs" | cut -d' ' -f1; python3 --version) | sha256sum | cut -d' ' -f1)
    if [[ "$(cat "$venv/.herald-requirements.sha256" 2>/dev/null)" != "$sum" ]]; then
        python3 -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv
        log "creating $venv from crates/test-support/push-requirements.txt"
        python3 -m venv --clear "$venv" >&2
        "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$reqs" >&2
        printf '%s\n' "$sum" >"$venv/.herald-requirements.sha256"
    fi
    printf '%s\n' "$venv/bin/python"
}
