# Herald container image: herald-api, herald-gateway, herald-worker and the dev token
# minter herald-token in one image; pick the service with the command (default: api).
#
#   docker build -t herald .
#   docker run --rm -e HERALD_DATABASE_URL=... -e HERALD_JWT_SECRET=... herald
#   docker run --rm ... herald herald-gateway
#
# The sqlx query macros are checked against the committed .sqlx/ data, so the build
# needs no database (SQLX_OFFLINE=true).

# ---- build ---------------------------------------------------------------------
FROM rust:1-bookworm AS builder
WORKDIR /src
ENV SQLX_OFFLINE=true \
    CARGO_TERM_COLOR=never \
    CARGO_INCREMENTAL=0

COPY . .
RUN cargo build --release --locked --workspace --bins \
 && mkdir -p /out \
 && for bin in herald herald-api herald-gateway herald-worker herald-token; do \
        install -m 0755 "target/release/$bin" /out/ || exit 1; \
    done

# ---- runtime -------------------------------------------------------------------
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin herald

COPY --from=builder /out/ /usr/local/bin/
COPY deploy/healthcheck.sh /usr/local/bin/herald-healthcheck

USER herald
ENV RUST_LOG=info
# api, gateway, worker (health and metrics)
EXPOSE 8080 8081 8082
# Listen on all interfaces inside the container; compose overrides per service.
ENV HERALD_API_ADDR=0.0.0.0:8080 \
    HERALD_GATEWAY_ADDR=0.0.0.0:8081 \
    HERALD_WORKER_ADDR=0.0.0.0:8082
CMD ["herald-api"]
