# syntax=docker/dockerfile:1
# Lead-scoring images. Default target: the transformer (`python -m transformer`).
# `--target predictor`: the stand-in predictor (`python -m predictor.server`) for clusters without kserve-xgbserver.
# Runtime dependencies only, pinned exactly by requirements/runtime.txt (derived from requirements/constraints.txt):
# CPU-only xgboost (xgboost-cpu), no dev/test tools, no compilers in the final image.

FROM python:3.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
# A virtualenv is the one folder the runtime stage copies: everything pip installed, nothing else.
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY requirements/runtime.txt /tmp/runtime.txt
# --no-deps: runtime.txt is the complete, resolved set; nothing may float in behind it.
RUN pip install --no-cache-dir --no-deps -r /tmp/runtime.txt \
 && pip check

FROM python:3.11-slim-bookworm AS runtime
# Fixed uid/gid 10001: the manifests run as runAsUser/runAsGroup 10001 with runAsNonRoot.
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin app
COPY --from=build /opt/venv /opt/venv
# Sources are copied, not pip-installed: no build step, and the code is owned by root (read-only for the app).
COPY contract/ /app/contract/
COPY transformer/ /app/transformer/
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TMPDIR=/var/tmp
WORKDIR /app
USER 10001:10001

FROM runtime AS predictor
# The stand-in predictor reads the model card through the contract package (copied above).
COPY predictor/ /app/predictor/
EXPOSE 8080 8081
HEALTHCHECK --interval=30s --timeout=3s CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/v2/health/live', timeout=2)"]
ENTRYPOINT ["python", "-m", "predictor.server"]

# Last stage = default target.
FROM runtime AS transformer
# Batch scoring (`python -m batch`, the Indexed Job of kustomize/components/batch-job) runs from this same image.
COPY batch/ /app/batch/
# The quality job (python -m quality.report / quality.backfill) runs from this image too (kustomize/components/quality-cronjob).
COPY quality/ /app/quality/
EXPOSE 8080 8081
# Kubernetes uses the probes of the InferenceService; this is for `docker run`.
HEALTHCHECK --interval=30s --timeout=3s CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/v2/health/live', timeout=2)"]
ENTRYPOINT ["python", "-m", "transformer"]
