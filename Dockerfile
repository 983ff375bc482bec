# syntax=docker/dockerfile:1.7
# einvoice: API and worker image.
#
# The official validation artefacts are installed and verified at build time, never committed:
#   docker build --build-arg RULES_SOURCE=rules/ .        # a directory inside the build context
#   docker build --build-arg RULES_SOURCE=rules.zip .     # an archive inside the build context
#   docker build .                                        # the official download (needs network at build time)

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python -m venv /opt/einvoice
COPY pyproject.toml constraints.txt README.md ./
COPY einvoice ./einvoice
COPY ubl_schemas ./ubl_schemas
RUN /opt/einvoice/bin/pip install -c constraints.txt .

# Artefacts: verified against ubl_schemas/manifest.json while installing.
ARG RULES_SOURCE=""
COPY . /context
RUN set -eu; \
    if [ -n "${RULES_SOURCE}" ]; then src="/context/${RULES_SOURCE}"; else src=""; fi; \
    /opt/einvoice/bin/einvoice rules install --rules-dir /opt/einvoice-rules ${src:+--from "$src"}; \
    /opt/einvoice/bin/einvoice rules verify --rules-dir /opt/einvoice-rules

FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    PATH=/opt/einvoice/bin:$PATH \
    EINVOICE_RULES_DIR=/opt/einvoice-rules \
    EINVOICE_DATA_DIR=/var/lib/einvoice \
    EINVOICE_HOST=0.0.0.0 \
    EINVOICE_PORT=8000
RUN groupadd --system einvoice && useradd --system --gid einvoice --home-dir /var/lib/einvoice einvoice \
    && install -d -o einvoice -g einvoice /var/lib/einvoice
COPY --from=build /opt/einvoice /opt/einvoice
COPY --from=build /opt/einvoice-rules /opt/einvoice-rules
USER einvoice
WORKDIR /var/lib/einvoice
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import os,urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('EINVOICE_PORT','8000'), timeout=4)" || exit 1
ENTRYPOINT ["einvoice"]
CMD ["serve"]
