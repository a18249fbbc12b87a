#!/usr/bin/env bash
# Builds and runs the gateway on its embedded default configuration: dicom-core listening on
# 0.0.0.0:11112 as AE title DICOM_CORE, spool in /var/lib/dicom-core/spool, objects landing in
# the local `file` store /var/lib/dicom-core/store (laid out like the S3 bucket), metrics on
# http://127.0.0.1:9112/metrics. Ctrl-C drains and stops. Extra arguments go to dicom-core.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF >/dev/null
cmake --build build -j"$(nproc)" --target dicom-core >/dev/null
exec ./build/core/dicom-core "$@"
