FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

# Dependencies first, for layer caching.
COPY pyproject.toml README.md ./
COPY skillswap/__init__.py skillswap/__init__.py
RUN pip install --upgrade pip && pip install .

COPY . .
RUN pip install --no-deps -e . && useradd --system --uid 10001 skillswap && mkdir -p /app/var /app/media \
    && chown -R skillswap /app/var /app/media
USER skillswap

EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz').status == 200 else 1)"
CMD ["skillswap", "serve", "--host", "0.0.0.0", "--port", "8000", "--no-migrate"]
