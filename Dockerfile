# vmlab in a container: two images from this one file.
#   demo (the default target): fuse3 and vmlab, to run the lab; lean (no plots,
#         no valgrind, no test tools)
#   lab:  the demo image plus valgrind, matplotlib and the test suite
#
# A container needs the FUSE device and the right to mount (root or rootless):
#   docker build -t vmlab .
#   docker run --rm --device /dev/fuse --cap-add SYS_ADMIN --security-opt apparmor=unconfined vmlab
#   docker run --rm --device /dev/fuse --cap-add SYS_ADMIN --security-opt apparmor=unconfined vmlab run thrash --frames 6
#   docker build --target lab -t vmlab-lab .
#   docker run --rm --init --device /dev/fuse --cap-add SYS_ADMIN --security-opt apparmor=unconfined vmlab-lab
# (--init: the suite starts and stops FUSE daemons, and a container's PID 1
# must reap them.) scripts/container-test.sh does all of it with podman or
# docker; BASE may name another Debian bookworm image with python3 and venv.
ARG BASE=python:3.11-slim-bookworm

FROM ${BASE} AS build
# gcc builds the real machine's compiled fault path (the demo image needs no compiler).
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN python3 -m venv /opt/vmlab \
 && /opt/vmlab/bin/pip install --no-cache-dir --disable-pip-version-check --quiet . \
 && /opt/vmlab/bin/vmlab --version \
 && /opt/vmlab/bin/python -c 'from vmlab.real.fastpath import why_not; assert not why_not(), why_not()'

FROM ${BASE} AS demo
RUN apt-get update \
 && apt-get install -y --no-install-recommends fuse3 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/vmlab /opt/vmlab
ENV PATH=/opt/vmlab/bin:$PATH
ENTRYPOINT ["vmlab"]
CMD ["demo"]

FROM demo AS lab
RUN apt-get update \
 && apt-get install -y --no-install-recommends valgrind libc6-dbg \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/vmlab-src
COPY . .
# The README's own set-up, as on a host (a venv in .venv, the package editable).
RUN bash scripts/setup.sh --dev && rm -rf build *.egg-info
ENTRYPOINT []
CMD [".venv/bin/python", "-m", "pytest"]
