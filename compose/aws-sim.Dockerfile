# Local stand-ins for AWS, for the compose file's "aws" profile only (never for production):
# moto's server (S3, DynamoDB, IAM, STS) at the version the tests use, and this project's
# HealthImaging EMULATOR (tests/support/hi_emulator.py), plus compose/aws_init.py.
# Build from the repository root: docker build -f compose/aws-sim.Dockerfile -t dicom-gw-aws-sim .
FROM python:3.11-slim-bookworm
RUN pip install --no-cache-dir "moto[server]==5.2.1" "boto3>=1.35" "PyYAML>=6" \
 && groupadd --system --gid 10001 sim \
 && useradd --system --uid 10001 --gid sim --home-dir /nonexistent --shell /usr/sbin/nologin sim \
 && mkdir -p /aws /opt/gw \
 && chown sim:sim /aws
# the sources (aws_init.py reads cloudformation/, tests/support/ and forwarder/schema/)
COPY . /opt/gw
USER 10001:10001
VOLUME ["/aws"]
EXPOSE 5000 8080
