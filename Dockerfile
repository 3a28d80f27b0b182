# dbvigil image: build with the Rust toolchain, run as a non-root user on a slim Debian.
#   docker build -t dbvigil .
#   docker run -p 10150:10150 dbvigil            # probes its embedded SQLite database
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked && strip target/release/dbvigil

FROM debian:bookworm-slim
# curl only for the healthcheck; ca-certificates for TLS to databases.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10150 dbvigil \
 && useradd --system --uid 10150 --gid 10150 --home-dir /var/lib/dbvigil --create-home dbvigil
COPY --from=build /src/target/release/dbvigil /usr/local/bin/dbvigil
USER 10150:10150
WORKDIR /var/lib/dbvigil
EXPOSE 10150
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s \
  CMD curl -fsS http://127.0.0.1:10150/-/healthy || exit 1
ENTRYPOINT ["dbvigil"]
CMD ["--data.dir=/var/lib/dbvigil"]
