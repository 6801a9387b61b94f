# vmlab in a container. FUSE needs the device and the right to mount:
#   docker build -t vmlab .
#   docker run --rm --device /dev/fuse --cap-add SYS_ADMIN \
#              --security-opt apparmor:unconfined vmlab            # runs `vmlab demo`
#   docker run --rm --device /dev/fuse --cap-add SYS_ADMIN \
#              --security-opt apparmor:unconfined vmlab run thrash --frames 6 --vmstat 0.2
# The test suite inside it:
#   docker run --rm --device /dev/fuse --cap-add SYS_ADMIN \
#              --security-opt apparmor:unconfined --entrypoint bash vmlab \
#              -c 'bash scripts/setup.sh --dev && .venv/bin/python -m pytest'
FROM python:3.11-slim-bookworm

RUN apt-get update \
 && apt-get install -y --no-install-recommends fuse3 valgrind \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/vmlab
COPY . .
RUN pip install --no-cache-dir . && vmlab --version

ENTRYPOINT ["vmlab"]
CMD ["demo"]
