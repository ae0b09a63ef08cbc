# The coordinator image: the `coordinator` binary (the crate links no
# inference engine), on a distroless base with glibc and CA certificates. Build from the repository root:
#   docker build -f docker/coordinator.Dockerfile -t eval-coordinator:0.1.0 .

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p coordinator \
 && install -D -m 0755 target/release/coordinator /out/coordinator

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/coordinator /usr/local/bin/coordinator
# The chart runs every pod as 10001:10001 with a read-only root filesystem;
# the state directory and /tmp are volumes.
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/coordinator"]
CMD ["run"]
