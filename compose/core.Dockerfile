# dicom-core (Store SCP + forwarder) image. Build from the repository root:
#   docker build -f compose/core.Dockerfile -t dicom-core:0.1.0 .
# Stage 1 builds with Debian 12's toolchain and -dev packages; stage 2 is Debian 12 slim with
# only the shared libraries the binary needs, running as the unprivileged user 10001.

FROM debian:12 AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential cmake pkg-config \
        libuv1-dev libssl-dev libcjson-dev zlib1g-dev libcurl4-openssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF \
 && cmake --build /build -j"$(nproc)" --target dicom-core \
 && /build/core/dicom-core --version

FROM debian:12-slim
# runtime libraries only (libuv, OpenSSL, cJSON, zlib, libcurl for the aws backend) and the CA
# bundle for HTTPS to AWS; tests/integration/test_deploy_compose.sh checks this list against
# the binary's NEEDED entries.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libuv1 libssl3 libcjson1 zlib1g libcurl4 \
        ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 dicom \
 && useradd --system --uid 10001 --gid dicom --home-dir /var/lib/dicom-core \
        --shell /usr/sbin/nologin dicom \
 && mkdir -p /var/lib/dicom-core /etc/dicom-core /run/gw \
 && chown dicom:dicom /var/lib/dicom-core /run/gw
COPY --from=build /build/core/dicom-core /usr/local/bin/dicom-core
COPY compose/gw-entrypoint.sh /usr/local/bin/gw-entrypoint
COPY compose/gw-healthcheck.sh /usr/local/bin/gw-healthcheck
USER 10001:10001
WORKDIR /var/lib/dicom-core
# Declared volumes: ECS (Fargate) copies these directories, with their owner (10001), into the
# task's bind mounts of the same path, so the non-root process can write there while the root
# file system is read-only.
VOLUME ["/var/lib/dicom-core", "/run/gw"]
# 11112 DICOM (plain or TLS, see core.json "tls"); 9112 /healthz and /metrics
EXPOSE 11112 9112
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["/usr/local/bin/gw-healthcheck", "9112"]
ENTRYPOINT ["/usr/local/bin/gw-entrypoint", "/usr/local/bin/dicom-core"]
CMD ["--config", "/etc/dicom-core/core.json"]
