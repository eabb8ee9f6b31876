# syntax=docker/dockerfile:1
#
# The `taskoverflow` binary: `serve` (API and web UI on port 6400) or `worker`.
#   docker build -t taskoverflow .
#   docker run --rm -p 6400:6400 taskoverflow             # embedded default, todos in /app/data
#   docker run --rm taskoverflow worker                   # needs CELERY_BROKER_URL

FROM rust:1-bookworm AS builder
WORKDIR /src
COPY . .
# The caches keep downloaded crates and compiled dependencies between builds; the binary is
# copied out of the cached target directory in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release -p taskoverflow-app \
    && install -m 0755 target/release/taskoverflow /usr/local/bin/taskoverflow

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 taskoverflow \
    && useradd --system --uid 10001 --gid taskoverflow --home-dir /app --shell /usr/sbin/nologin taskoverflow \
    && mkdir -p /app/data \
    && chown -R taskoverflow:taskoverflow /app
COPY --from=builder /usr/local/bin/taskoverflow /usr/local/bin/taskoverflow
WORKDIR /app
USER 10001:10001
ENV HOST=0.0.0.0 \
    PORT=6400 \
    TASKOVERFLOW_DATA_DIR=/app/data
EXPOSE 6400
ENTRYPOINT ["taskoverflow"]
CMD ["serve"]
