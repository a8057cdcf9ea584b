"""Settings, read from ``GATEWAY_*`` environment variables (and an optional ``.env``).

Nothing here runs at import time: :func:`load_settings` is called by the app factory and the CLI.
Outside ``development`` the secret keys must be given; in development they are generated once
and kept in the data directory, so a fresh clone starts without configuration but no key is
ever a constant in the source.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Literal

from cryptography.fernet import Fernet
from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from typing_extensions import Annotated

DEFAULT_PLUGINS = ["care4", "veiligthuis", "wmo", "police"]


def _csv(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", env_file=".env", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    data_dir: Path = Path("var")
    database_url: str = ""
    enabled_plugins: Annotated[list[str], NoDecode] = Field(default_factory=lambda: list(DEFAULT_PLUGINS))
    routes_file: Path | None = None
    mappings_dir: Path | None = None

    # Secrets. Several encryption keys may be given (comma separated): the first encrypts,
    # all decrypt, which is how a key is rotated without a flag day.
    encryption_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    pseudonym_key: SecretStr | None = None
    audit_signing_key: SecretStr | None = None
    # The public keys (hex) of signing keys used before the current one, so that their checkpoints
    # still verify after a rotation; a checkpoint signed by any other key does not.
    audit_retired_public_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # HTTP
    host: str = "127.0.0.1"
    port: int = 8000
    max_body_bytes: int = 5 * 1024 * 1024
    public_base_url: str = "http://127.0.0.1:8000"

    # A token found valid is trusted this long without asking the database again; a token revoked
    # by another process (the CLI) is refused at the latest this long after. 0: ask every time.
    token_cache_seconds: float = Field(2.0, ge=0, le=60)

    # Delivery
    auto_migrate: bool = True
    worker_enabled: bool = True
    # Attempts in flight per process (a slot is held while the partner is being asked, not while its
    # outcome waits to be recorded); with the share below, at most 32 at once to one partner.
    worker_concurrency: int = 64
    worker_poll_interval: float = 0.2
    worker_batch_size: int = 32
    # The most of the worker's slots one partner may hold, so a slow partner leaves room for the rest.
    worker_partner_share: float = Field(0.5, gt=0, le=1)
    # A partner counts as down after this many failed attempts in a row; its first answer after
    # that releases its waiting messages at once. See gateway/core/partner_health.py.
    partner_down_after_failures: int = Field(5, ge=1)
    lease_seconds: float = 60.0
    attempt_deadline_seconds: float = 30.0
    connect_timeout_seconds: float = 5.0
    inbound_processing_timeout_seconds: float = 60.0
    # Multiplies every retry delay; tests and chaos runs shrink time with it.
    retry_scale: float = 1.0

    # Privacy
    body_retention_days: int = 90
    # A vitaal_belang decision (acute danger) holds this long after its decided_at: a message
    # still waiting after that — for a retry, a replay — is refused, and a new decision is needed.
    vitaal_belang_hours: float = Field(24.0, gt=0, le=24 * 7)
    audit_checkpoint_interval_hours: float = 24.0
    maintenance_interval_seconds: float = 3600.0

    # Web console. A session ends this long after login, or after this long without a request,
    # whichever comes first; the token it was opened with still has to be valid on every request.
    console_session_minutes: float = Field(default=480.0, gt=0)
    console_idle_minutes: float = Field(default=30.0, gt=0)

    # Observability. The OpenTelemetry exporter reads the standard OTEL_* names.
    log_level: str = "INFO"
    log_format: Literal["json", "console"] = "json"
    otel_exporter_otlp_endpoint: str | None = Field(
        default=None, validation_alias=AliasChoices("OTEL_EXPORTER_OTLP_ENDPOINT", "GATEWAY_OTEL_EXPORTER_OTLP_ENDPOINT"))
    otel_service_name: str = Field(
        default="schakel-gateway", validation_alias=AliasChoices("OTEL_SERVICE_NAME", "GATEWAY_OTEL_SERVICE_NAME"))

    @field_validator("enabled_plugins", "encryption_keys", "audit_retired_public_keys", mode="before")
    @classmethod
    def _split_csv(cls, value: object) -> object:
        return _csv(value)

    @model_validator(mode="after")
    def _defaults_and_refusals(self) -> "Settings":
        if not self.database_url:
            self.database_url = f"sqlite:///{(self.data_dir / 'schakel.db').as_posix()}"
        if self.environment == "production":
            missing = [
                name
                for name, value in (
                    ("GATEWAY_ENCRYPTION_KEYS", self.encryption_keys),
                    ("GATEWAY_PSEUDONYM_KEY", self.pseudonym_key),
                    ("GATEWAY_AUDIT_SIGNING_KEY", self.audit_signing_key),
                )
                if not value
            ]
            if missing:
                raise ValueError(f"production needs these secrets set: {', '.join(missing)}")
        for key in self.encryption_keys:
            try:
                Fernet(key.get_secret_value().encode())
            except ValueError as exc:
                raise ValueError("GATEWAY_ENCRYPTION_KEYS holds a key that is not a Fernet key") from exc
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def sqlalchemy_url(self) -> str:
        """The URL with a driver SQLAlchemy can use (psycopg 3 for PostgreSQL)."""
        url = self.database_url
        for prefix in ("postgresql://", "postgres://"):
            if url.startswith(prefix):
                return "postgresql+psycopg://" + url[len(prefix):]
        return url


def _ensure_dev_secrets(settings: Settings) -> Settings:
    """Generate development secrets once and keep them next to the database."""
    if settings.encryption_keys and settings.pseudonym_key and settings.audit_signing_key:
        return settings
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    path = settings.data_dir / "dev-secrets.json"
    if path.exists():
        stored = json.loads(path.read_text())
    else:
        stored = {
            "encryption_key": Fernet.generate_key().decode(),
            "pseudonym_key": secrets.token_urlsafe(32),
            "audit_signing_key": secrets.token_urlsafe(32),
        }
        # The file holds keys: only its owner may read it.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(stored, handle)
    if not settings.encryption_keys:
        settings.encryption_keys = [SecretStr(stored["encryption_key"])]
    if settings.pseudonym_key is None:
        settings.pseudonym_key = SecretStr(stored["pseudonym_key"])
    if settings.audit_signing_key is None:
        settings.audit_signing_key = SecretStr(stored["audit_signing_key"])
    return settings


def load_settings(**overrides: object) -> Settings:
    settings = Settings(**overrides)  # type: ignore[arg-type]
    if settings.environment != "production":
        settings = _ensure_dev_secrets(settings)
    return settings
