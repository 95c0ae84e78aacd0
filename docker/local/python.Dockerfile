# A stand-in for python:3.11.7-slim-bookworm, built from Debian's packages by docker/local-images.sh
# for machines that cannot pull from Docker Hub. Debian's Python 3.11 (bookworm: 3.11.2), venv and
# pip; `python` is python3, as in the official image. Local use only: the real image stays the default.
ARG BASE=hashrec-local/debian:bookworm
FROM ${BASE}
ENV DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv python3-pip python-is-python3 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# The build machine's extra certificate authorities (a TLS-inspecting egress proxy, say), so that
# pip inside builds trusts what the machine trusts; pip reads the system bundle through PIP_CERT.
COPY ca-certificates/ /usr/local/share/ca-certificates/
RUN update-ca-certificates
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
CMD ["python3"]
