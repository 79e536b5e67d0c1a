# syntax=docker/dockerfile:1
# medlim app image: the locked environment (uv.lock) and the Streamlit app.
#   docker build -t medlim .
#   docker run --rm -p 8501:8501 -v medlim-data:/data medlim
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PROJECT_ENVIRONMENT=/app/.venv

RUN python -m pip install --no-cache-dir "uv==0.13.9"

WORKDIR /app

# Dependencies first, from the lock alone, so this layer is cached until uv.lock changes.
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-project

# Then the project (app, pages, package, weights, samples).
COPY . .
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev

# Results store and per-installation keys live in a volume, owned by an unprivileged user.
RUN useradd --create-home --uid 1000 medlim && mkdir -p /data && chown medlim:medlim /data
USER medlim
ENV PATH="/app/.venv/bin:${PATH}" \
    MEDLIM_HOME=/data \
    STREAMLIT_BROWSER_GATHER_USAGE_STATS=false
VOLUME ["/data"]
EXPOSE 8501

HEALTHCHECK --interval=30s --timeout=5s --start-period=90s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4).status == 200 else 1)"]

# Error details, upload size and XSRF protection come from .streamlit/config.toml (issue 14):
# this command sets only where the server listens.
CMD ["streamlit", "run", "app.py", "--server.address", "0.0.0.0", "--server.port", "8501", "--server.headless", "true"]
