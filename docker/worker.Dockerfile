# The CUDA worker image: the `worker` binary built with the `cuda` feature
# (mistral.rs on the GPU in BF16) and the CUDA libraries it loads. Build from
# the repository root, on any x86_64 machine (no GPU needed to build):
#   docker build -f docker/worker.Dockerfile -t eval-worker:0.1.0 .
# The build stage runs scripts/build-cuda-worker, the script a validator runs
# outside Docker: the same CUDA 13.0 toolkit, assembled from NVIDIA's wheels on
# PyPI pinned by version and sha256, and the same command,
#   cargo build --release --locked -p worker --features cuda --no-default-features
# so image and script hold the same binary (docs/cuda-build.md).
# CUDA_COMPUTE_CAP picks the kernels' targets: by default 80,89,90 (A100,
# L40S/RTX 4090, H100/H200); set one value (e.g. 90) for a smaller, faster build.
# At run time the GPU host needs an NVIDIA driver >= 580 (CUDA 13.0) and the
# NVIDIA container toolkit, which mounts the driver library into the container.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS build
ARG CUDA_COMPUTE_CAP=80,89,90
ENV CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP} \
    EVAL_CUDA_DIR=/opt/eval-cuda
# python3-pip installs the CUDA wheels; zstd compresses a binary over 64 MiB.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-pip zstd \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN scripts/build-cuda-worker \
 && install -D -m 0755 /opt/eval-cuda/out/worker /out/worker \
 && cp -a /opt/eval-cuda/out/lib /out/lib

FROM debian:bookworm-slim
# The CUDA libraries from the build stage's toolkit (cudart, cuBLAS, cuBLASLt,
# cuRAND, NVRTC), found through the loader cache. libcuda.so.1 is the host
# driver's, mounted by the NVIDIA container toolkit.
COPY --from=build /out/lib/ /opt/cuda/lib/
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && echo /opt/cuda/lib > /etc/ld.so.conf.d/eval-cuda.conf \
 && ldconfig \
 && groupadd --gid 10001 eval \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin eval
COPY --from=build /out/worker /usr/local/bin/worker
ENV HOME=/tmp \
    HF_HOME=/var/cache/huggingface \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    NVIDIA_REQUIRE_CUDA="cuda>=13.0"
# The chart mounts the Hugging Face cache and /tmp as volumes (read-only root).
USER 10001:10001
EXPOSE 9090
ENTRYPOINT ["/usr/local/bin/worker"]
CMD ["run"]
