# The one `loupe` binary, for the server-mode roles of docker-compose.yml.
# (The embedded engine is not shipped in the image: server mode talks to a
# ClickHouse server.)
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --bin loupe

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/loupe /usr/local/bin/loupe
USER nobody
ENTRYPOINT ["/usr/local/bin/loupe"]
