# finpulse worker / trainer image (CPU). Build: docker build -t finpulse .
# The same image runs `finpulse worker` (default) and `finpulse train` (compose "trainer").
# It installs the built wheel with scripts/install-wheel.sh, exactly as tests/test_wheel.py does.

FROM python:3.11-slim AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY models ./models
COPY training ./training
COPY stream_app ./stream_app
COPY finpulse ./finpulse
RUN pip wheel --no-deps --wheel-dir /dist .

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

COPY scripts/install-wheel.sh /tmp/install-wheel.sh
COPY --from=wheel /dist /tmp/dist
RUN TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu \
        sh /tmp/install-wheel.sh /tmp/dist/finpulse-*.whl \
    && rm -rf /tmp/dist /tmp/install-wheel.sh \
    && useradd --create-home --uid 10001 finpulse \
    && mkdir -p /models && chown finpulse /models

USER finpulse
WORKDIR /home/finpulse
ENV FINPULSE_MODEL_DIR=/models/current \
    FINPULSE_WEB_HOST=0.0.0.0 \
    FINPULSE_WEB_PORT=6066
EXPOSE 6066

HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:6066/health', timeout=2).status == 200 else 1)"

ENTRYPOINT ["finpulse"]
CMD ["worker"]
