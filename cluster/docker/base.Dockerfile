# binder-base:bookworm: what every image of the docker builder starts FROM (BINDER_DOCKER_BASE_IMAGE).
# Built locally on a debootstrapped Debian root (setup-docker.sh), because no image can be pulled here.
FROM binder-rootfs:bookworm

# The host's extra certificate authorities (a TLS-intercepting egress proxy), so that builds reach
# PyPI and Debian as the host does; an empty folder when the host has none.
COPY extra-ca-certificates/ /usr/local/share/ca-certificates/
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates python3 python3-venv python3-pip git tini \
 && update-ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# pip's and uv's own certificate stores would not know those authorities: point them at the system's.
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt \
    UV_NATIVE_TLS=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LANG=C.UTF-8
RUN python3 -m pip install --no-cache-dir --break-system-packages "uv>=0.5,<1"
