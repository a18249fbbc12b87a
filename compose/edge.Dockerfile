# dicom-edge (mTLS terminator + AE-title policy + proxy) image. Build from the repository root:
#   docker build -f compose/edge.Dockerfile -t dicom-edge:0.1.0 .
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
 && cmake --build /build -j"$(nproc)" --target dicom-edge \
 && /build/edge/dicom-edge --version

FROM debian:12-slim
# runtime libraries only (libuv, OpenSSL, cJSON, zlib); checked against the binary's NEEDED
# entries by tests/integration/test_deploy_compose.sh
RUN apt-get update \
 && apt-get install -y --no-install-recommends libuv1 libssl3 libcjson1 zlib1g \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 dicom \
 && useradd --system --uid 10001 --gid dicom --home-dir /nonexistent \
        --shell /usr/sbin/nologin dicom \
 && mkdir -p /etc/dicom-edge /run/gw \
 && chown dicom:dicom /run/gw
COPY --from=build /build/edge/dicom-edge /usr/local/bin/dicom-edge
COPY compose/gw-entrypoint.sh /usr/local/bin/gw-entrypoint
COPY compose/gw-healthcheck.sh /usr/local/bin/gw-healthcheck
USER 10001:10001
# 2762 DICOM over TLS (the registered DICOM-TLS port); 9111 /healthz and /metrics
EXPOSE 2762 9111
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/gw-healthcheck", "9111"]
ENTRYPOINT ["/usr/local/bin/gw-entrypoint", "/usr/local/bin/dicom-edge"]
CMD ["--config", "/etc/dicom-edge/edge.json"]
