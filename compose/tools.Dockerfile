# Tools image for the local chain's init services: certs/pki (bash, openssl, jq) for the PKI.
# Build from the repository root: docker build -f compose/tools.Dockerfile -t dicom-gw-tools .
FROM debian:12-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends bash openssl jq ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 dicom \
 && useradd --system --uid 10001 --gid dicom --home-dir /pki --shell /usr/sbin/nologin dicom \
 && mkdir -p /pki /opt/gw \
 && chown dicom:dicom /pki
COPY certs /opt/gw/certs
COPY compose/init-pki.sh /opt/gw/compose/init-pki.sh
COPY compose/config/policy-routes.json /opt/gw/compose/config/policy-routes.json
ENV PATH=/opt/gw/certs:$PATH
USER 10001:10001
VOLUME ["/pki"]
ENTRYPOINT []
CMD ["/opt/gw/compose/init-pki.sh"]
