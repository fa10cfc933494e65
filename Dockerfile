# Peil in a container: `docker build -t peil .` then
# `docker run -e PEIL_SECRET_KEY=$(openssl rand -base64 48) -e PEIL_MAIL_URL=smtp://user:pass@mail.example.com:587 \
#  -e PEIL_BASE_URL=https://peil.example.com -p 8000:8000 -v peil-data:/data peil`
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PEIL_ENV=production \
    PEIL_DATA_DIR=/data \
    PEIL_DATABASE_URL=sqlite:////data/peil.db

WORKDIR /app
RUN useradd --create-home --uid 10001 peil && mkdir /data && chown peil:peil /data

COPY pyproject.toml README.md alembic.ini ./
COPY alembic alembic
COPY scoring scoring
COPY service service
COPY survey_definitions survey_definitions
# Editable, so the command finds alembic/ and survey_definitions/ beside the code.
RUN pip install -e .

USER peil
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"
CMD ["sh", "-c", "peil db upgrade && exec peil serve --host 0.0.0.0 --port 8000 --workers 2"]
