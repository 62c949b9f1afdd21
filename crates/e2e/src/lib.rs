//! `herald-e2e`: the API's end-to-end tests (`tests/`), in a crate of their
//! own. Each starts the three services together on a fresh database and a
//! private Redis prefix (`herald-test-support`) and talks to them over HTTP
//! and SSE, as a client would: publish through the API, read through the
//! gateway. They live here rather than in `herald-api` so that the API,
//! which never talks to Redis, does not link a Redis client even for its
//! tests (`cargo tree -p herald-api`).
