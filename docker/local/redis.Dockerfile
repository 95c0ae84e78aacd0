# A stand-in for redis:7.2.4-alpine, built from Debian's redis-server (bookworm: 7.0) by
# docker/local-images.sh for machines that cannot pull from Docker Hub. Local use only.
ARG BASE=hashrec-local/debian:bookworm
FROM ${BASE}
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /data && chown redis:redis /data
WORKDIR /data
USER redis
EXPOSE 6379
CMD ["redis-server", "--protected-mode", "no"]
