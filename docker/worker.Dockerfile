# The CUDA worker image: the `worker` binary built with the `cuda` feature
# (mistral.rs on the GPU in BF16) on NVIDIA's CUDA devel image, run on the
# matching runtime image (CUDA libraries, no compiler). Build from the
# repository root, on any machine (no GPU needed to build):
#   docker build -f docker/worker.Dockerfile -t eval-worker:0.1.0 .
# CUDA_COMPUTE_CAP picks the kernels' target: 80 (PTX, JIT-compiled on newer
# GPUs) covers A100, L4/L40 and H100; set 90 for H100-only images.

ARG CUDA_VERSION=12.8.1
ARG UBUNTU=ubuntu24.04

FROM nvidia/cuda:${CUDA_VERSION}-devel-${UBUNTU} AS build
ARG RUST_VERSION=1.95.0
ARG CUDA_COMPUTE_CAP=80
ENV CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP} \
    RUSTUP_HOME=/opt/rustup \
    CARGO_HOME=/opt/cargo \
    PATH=/opt/cargo/bin:${PATH}
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl build-essential pkg-config \
 && rm -rf /var/lib/apt/lists/* \
 && curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs \
    | sh -s -- -y --profile minimal --default-toolchain "${RUST_VERSION}"
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p worker --features cuda \
 && install -D -m 0755 target/release/worker /out/worker

FROM nvidia/cuda:${CUDA_VERSION}-runtime-${UBUNTU}
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 eval \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin eval
COPY --from=build /out/worker /usr/local/bin/worker
ENV HOME=/tmp \
    HF_HOME=/var/cache/huggingface \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
# The chart mounts the Hugging Face cache and /tmp as volumes (read-only root).
USER 10001:10001
EXPOSE 9090
ENTRYPOINT ["/usr/local/bin/worker"]
CMD ["run"]
