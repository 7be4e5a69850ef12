# Chinwag container image.
#
#   docker build -t chinwag .
#   docker run -p 8080:8080 -v chinwag-data:/data chinwag
#
# The server runs as the unprivileged user `chinwag` (uid/gid 10001) and keeps its SQLite
# database and generated secrets in /data. A named volume inherits the ownership of /data from
# the image; a bind-mounted host directory must be writable by uid 10001
# (`chown 10001:10001 <dir>`).
#
# The HEALTHCHECK runs `chinwag health`, which asks the server's own GET /healthz (200 when the
# database answers a read and a write): the runtime image needs no curl for it.
#
# `--build-arg CHINWAG_COMMIT=$(git rev-parse --short HEAD)` names the commit in
# `chinwag --version` (the build context has no .git).

# ---- build ------------------------------------------------------------------------------------
FROM rust:1-bookworm AS build
WORKDIR /src

# Dependencies first: build them against placeholder sources so this layer stays cached until
# a Cargo.toml or Cargo.lock changes. Every target of every workspace member must exist to load
# the workspace: the load tool (bench/) keeps its placeholder, since the image never builds it.
COPY Cargo.toml Cargo.lock ./
COPY bench/Cargo.toml ./bench/Cargo.toml
# Build settings (SQLite syncs with fdatasync), before the dependencies are built.
COPY .cargo ./.cargo
RUN mkdir -p src bench/src \
    && echo 'fn main() {}' > src/main.rs \
    && echo 'fn main() {}' > bench/src/main.rs \
    && touch src/lib.rs \
    && cargo build --release --locked -p chinwag --bin chinwag \
    && rm -rf src

# The real sources. sql/, docs/openapi.json and the browser's files in web/ are embedded into
# the binary, so they must be present too.
ARG CHINWAG_COMMIT=
ENV CHINWAG_COMMIT=$CHINWAG_COMMIT
COPY build.rs ./
COPY sql ./sql
COPY docs/openapi.json ./docs/openapi.json
COPY web ./web
COPY src ./src
# COPY keeps the files' own modification times, which can be older than the placeholder build:
# touch the crate roots so cargo rebuilds the crate itself.
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked -p chinwag --bin chinwag \
    && install -D -m 0755 target/release/chinwag /out/chinwag

# ---- runtime ----------------------------------------------------------------------------------
FROM debian:bookworm-slim

RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 chinwag \
    && useradd --system --uid 10001 --gid chinwag --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin chinwag \
    && mkdir -p /data \
    && chown chinwag:chinwag /data \
    && chmod 0750 /data

COPY --from=build /out/chinwag /usr/local/bin/chinwag

ENV CHINWAG_LISTEN=0.0.0.0:8080 \
    CHINWAG_DATA_DIR=/data

# Declared after /data is created and chowned, so new volumes start out owned by chinwag.
VOLUME ["/data"]
WORKDIR /data
# Numeric, so platforms that enforce "run as non-root" can verify it without /etc/passwd.
USER 10001:10001
EXPOSE 8080

HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 CMD ["chinwag", "health"]

# Exec form: chinwag is PID 1 and receives SIGTERM directly for its graceful shutdown.
ENTRYPOINT ["chinwag"]
CMD ["serve"]
