# The gateway image used by docker-compose.yml: the core and the four partner plugins.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY plugins ./plugins
COPY mappings ./mappings
RUN pip install --no-cache-dir . ./plugins/care4 ./plugins/veiligthuis ./plugins/wmo ./plugins/police \
    && useradd --system --home /var/lib/schakel schakel && mkdir -p /var/lib/schakel && chown schakel /var/lib/schakel
ENV GATEWAY_MAPPINGS_DIR=/app/mappings GATEWAY_DATA_DIR=/var/lib/schakel
USER schakel
EXPOSE 8000
CMD ["gateway", "serve"]
