# chidao-ledger: the API (`ledger serve`, the default) and every other `ledger` command.
#   docker build -t chidao-ledger .
#   docker run --rm -e LEDGER_DATABASE_URL=postgresql://... -p 8000:8000 chidao-ledger
# See docs/deployment.md (compose.yaml runs PostgreSQL, the API and the projection worker).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# An unprivileged user owns nothing but its home; the code is root-owned and read-only to it.
RUN groupadd --system --gid 10001 ledger \
 && useradd --system --uid 10001 --gid ledger --home-dir /home/ledger --create-home \
      --shell /usr/sbin/nologin ledger

# Only what the package needs (.dockerignore keeps tests, .venv and .git out).
COPY . /src
RUN pip install /src && rm -rf /src

USER ledger
WORKDIR /home/ledger

ENV LEDGER_API_HOST=0.0.0.0 \
    LEDGER_API_PORT=8000 \
    LEDGER_API_WORKERS=2
EXPOSE 8000

HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-m", "service.healthcheck"]

CMD ["ledger", "serve"]
