# Herald task runner (https://just.systems). Every recipe is a thin wrapper over a
# script or a cargo command, so nothing here is required: the scripts work alone.

set shell := ["bash", "-euo", "pipefail", "-c"]
# Recipe arguments arrive as "$@", correctly quoted.
set positional-arguments := true

# List the recipes.
default:
    @just --list

# Bring Herald up locally: `herald` on Postgres alone, or with --multi Redis + api, worker and gateway (scripts/up [--multi] [--no-build]).
up *args:
    scripts/up "$@"

# Stop whatever `just up` started (herald, or api, worker and gateway).
down:
    scripts/down

# Restart one service: `just restart herald --kill9`; after `just up --multi`: `just restart worker --kill9`.
restart svc *flags:
    scripts/restart "$@"

# Run the whole test suite; extra args go to cargo nextest (`just test -p herald-gateway`).
test *args:
    scripts/test "$@"

# Faults under steady load, with accounting: `just fault-suite`, `just fault-suite --long`.
fault-suite *args:
    scripts/fault-suite "$@"

# Benchmark Herald against the Node.js baseline: `just bench`, `just bench --smoke`, `just bench --scaling` (BENCHMARKS.md).
bench *args:
    scripts/bench "$@"

# Format the workspace.
fmt:
    cargo fmt --all

# Lint like CI does.
lint:
    SQLX_OFFLINE=true cargo clippy --workspace --all-targets -- -D warnings

# Mint a dev JWT: `just token --sub alice --topics 'feed:*'`, `just token --sub svc --scope publish`.
token *args:
    SQLX_OFFLINE=true cargo run -q -p herald-api --bin herald-token -- "$@"

# Regenerate the checked-in openapi/openapi.json from the code.
openapi:
    UPDATE_OPENAPI=1 SQLX_OFFLINE=true cargo test -p herald-api --test openapi

# Regenerate the committed .sqlx/ offline query data (needs Postgres; no sqlx-cli).
sqlx-prepare:
    scripts/sqlx-prepare
