"""The one place that reads configuration: a frozen, typed view of the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

DEV_SECRET_KEY = "dev-insecure-secret-key-change-me"
DEFAULT_DATA_DIR = Path("var")
SMTP_TLS_MODES = ("starttls", "tls", "none")
STORAGE_BACKENDS = ("local", "s3")
SIGNUP_BONUS_MOMENTS = ("verified", "signup")
LOG_FORMATS = ("text", "json")
S3_PRESIGN_MIN_SECONDS = 300
S3_PRESIGN_MAX_SECONDS = 302_400  # signed for twice as long: S3's limit is 7 days


class ConfigError(Exception):
    """The configuration cannot run the service."""


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"not a boolean: {value!r}")


def _list(value: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in value.split(",") if item.strip())


@dataclass(frozen=True)
class Settings:
    """Every setting, with the environment variable that sets it (upper-cased field name, or
    the `env` its field names)."""

    # Core
    secret_key: str = DEV_SECRET_KEY
    database_url: str = ""  # empty: the embedded SQLite file under data_dir
    redis_url: str = ""  # empty: in-process bridge, in-memory broker and denylist
    redis_prefix: str = "skillswap:"  # every Redis key and stream starts with it
    data_dir: str = str(DEFAULT_DATA_DIR)
    public_url: str = ""  # how clients reach the service; defaults to http://host:port
    # Take the client address from X-Real-IP / X-Forwarded-For: only behind a proxy that sets them.
    trust_proxy_headers: bool = False
    allowed_hosts: tuple[str, ...] = ()
    cors_origins: tuple[str, ...] = ()
    # PostgreSQL connections per process. A fixed pool, no overflow by default: under sustained
    # load an overflow connection is opened and closed for each checkout, and PostgreSQL forks
    # a backend for each (measured: 400 connections opened for 512 orders at 64 clients).
    db_pool_size: int = 20
    db_max_overflow: int = 0
    # Connect through PgBouncer in transaction pooling: no pool of our own (PgBouncer is the
    # pool) and no named prepared statements, which would outlive the server connection they
    # were prepared on.
    database_pgbouncer: bool = False
    # Processes `skillswap serve` runs on one machine, sharing its port (PostgreSQL + Redis only)
    web_workers: int = 1
    # Where `skillswap serve` listens unless --host / --port say otherwise
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "INFO"
    # `text` (readable lines) or `json` (one JSON object per line, for a log collector)
    log_format: str = "text"
    # /metrics (Prometheus) asks for `Authorization: Bearer <METRICS_TOKEN>` when this is set;
    # empty: it answers anyone who can reach it (keep it on a private network then).
    metrics_token: str = field(default="", repr=False)
    # The gettext catalogs; empty: `locales/` beside the package
    locales_dir: str = field(default="", metadata={"env": "SKILLSWAP_LOCALES_DIR"})
    # `createadmin` without --password and without a terminal to ask on
    admin_password: str = field(
        default="", repr=False, metadata={"env": "SKILLSWAP_ADMIN_PASSWORD"}
    )
    # Requests
    max_body_bytes: int = 1_048_576
    max_upload_bytes: int = 5_242_880
    media_dir: str = ""  # uploaded images; empty: {data_dir}/media, served under /media/
    # Object storage: `local` (MEDIA_DIR, served at /media/) or `s3` (any S3-compatible store:
    # AWS, MinIO, R2...). Images are then served from S3_PUBLIC_BASE_URL + key when it is set
    # (a public bucket or a CDN in front of it: recommended in production, the URLs never
    # expire and are cached by browsers), otherwise by presigned GET URLs that stay valid at
    # least S3_PRESIGN_SECONDS after the API hands them out.
    storage_backend: str = "local"
    s3_endpoint_url: str = ""  # empty: AWS itself; otherwise e.g. http://minio:9000
    s3_bucket: str = ""
    s3_access_key_id: str = ""  # empty: the AWS default credential chain (then no presigning)
    s3_secret_access_key: str = field(default="", repr=False)
    s3_region: str = "us-east-1"
    s3_public_base_url: str = ""
    s3_presign_seconds: int = 3600
    default_page_size: int = 20
    max_page_size: int = 100
    # Auth
    access_token_ttl_seconds: int = 900
    refresh_token_ttl_seconds: int = 30 * 24 * 3600
    # A refresh token presented again this soon after its rotation gets the same new pair
    # (apps refresh in parallel); later, it is a replay and ends the session. 0: no grace.
    refresh_reuse_grace_seconds: int = 30
    jwt_algorithm: str = "HS256"  # HS256 with SECRET_KEY, or RS256 with JWT_PRIVATE_KEY_FILE
    jwt_key_id: str = "k1"
    jwt_private_key_file: str = ""
    jwt_previous_keys: tuple[str, ...] = ()  # "kid:secret" pairs still accepted for verification
    jwt_issuer: str = "skillswap"
    password_min_length: int = 10
    auth_user_cache_seconds: int = 5  # how long a node reuses a signed-in user's row (0: never)
    # Failed sign-ins are slowed, never locked: LOGIN_MAX_FAILURES failures of one account from
    # one address (LOGIN_MAX_FAILURES_PER_IP from one address, whatever the accounts) are free;
    # then each further attempt waits LOGIN_DELAY_BASE_SECONDS, doubled at each failure, up to
    # LOGIN_DELAY_MAX_SECONDS. Failures are forgotten LOGIN_FAILURE_WINDOW_SECONDS after the last.
    login_max_failures: int = 10
    login_max_failures_per_ip: int = 100
    login_failure_window_seconds: int = 900
    login_delay_base_seconds: int = 2
    login_delay_max_seconds: int = 900
    # The operators' dashboard (/admin/): a session ends after this long unused, and at the latest
    # this long after signing in.
    admin_session_idle_seconds: int = 1800
    admin_session_max_seconds: int = 12 * 3600
    password_reset_max_per_hour: int = 5  # reset emails per address
    reports_per_day: int = 20  # reports one user may file in 24 hours (then 429)
    # Named rate limits, "name=N/period" comma separated (period: second, minute, hour, day, or
    # e.g. 15minutes); policies left out keep their defaults (skillswap/auth/ratelimits.py),
    # "off" turns every limit off (load tests, benchmarks). Per user, else per client address.
    rate_limits: str = ""
    argon2_time_cost: int = 2
    argon2_memory_kib: int = 19_456
    argon2_parallelism: int = 1
    email_token_ttl_seconds: int = 2 * 24 * 3600
    password_reset_ttl_seconds: int = 3600
    idempotency_ttl_seconds: int = 24 * 3600
    idempotency_lease_seconds: int = 30  # a claim whose request never finished is then retaken
    # Google sign-in
    google_client_id: str = ""
    # Every client whose ID tokens may sign in (web, Android, iOS); GOOGLE_CLIENT_ID is one of them.
    google_client_ids: tuple[str, ...] = ()
    google_client_secret: str = ""
    google_discovery_url: str = "https://accounts.google.com/.well-known/openid-configuration"
    oauth_redirect_url: str = ""  # defaults to {public_url}/api/auth/oauth/google/callback/
    # A page of the web app the callback sends the browser on to, with the outcome in the URL
    # fragment; empty: the callback answers JSON.
    oauth_web_redirect_url: str = ""
    # Economy
    signup_bonus_points: int = 100
    # When the bonus is granted: `verified` (once the email is verified, at most once per email
    # address ever) or `signup` (at registration, once per account).
    signup_bonus_on: str = "verified"
    # Placing orders and writing reviews need a verified email.
    require_verified_email: bool = True
    # Reviews from one person about another count once per period of this many days in ratings.
    review_pair_period_days: int = 30
    platform_fee_percent: int = 0
    # Order deadlines: a pending order expires (refunded) unless accepted in time, an accepted
    # one expires (refunded) unless delivered in time, a delivered one completes by itself.
    order_accept_timeout_seconds: int = 3 * 24 * 3600
    order_delivery_timeout_seconds: int = 14 * 24 * 3600
    order_auto_complete_seconds: int = 3 * 24 * 3600
    # Deliveries a buyer may send back per order; then they complete or dispute.
    order_max_change_requests: int = 3
    review_window_seconds: int = 7 * 24 * 3600
    # Lessons: a slot may be booked no sooner than this before it starts.
    lesson_notice_seconds: int = 3600
    # A buyer cancelling a lesson more than this before its start is refunded in full; later
    # (until the start) half the price goes to the teacher and the rest back to the buyer.
    lesson_free_cancel_seconds: int = 24 * 3600
    # The lesson's call opens this long before the start (and closes a quarter hour after its
    # end). ICE servers handed to the participants: STUN_URLS (empty: none), and TURN when both
    # TURN_URLS and TURN_SECRET are set (coturn's `use-auth-secret`), its credentials valid for
    # TURN_TTL_SECONDS. A call signalling frame may be at most CALL_SIGNAL_MAX_BYTES.
    lesson_call_early_seconds: int = 600
    stun_urls: tuple[str, ...] = ("stun:stun.l.google.com:19302",)
    turn_urls: tuple[str, ...] = ()
    turn_secret: str = field(default="", repr=False)
    turn_ttl_seconds: int = 3600
    call_signal_max_bytes: int = 16_384
    # Lesson reminders: a mail and a push to each participant this many seconds before the
    # start (comma-separated), each sent once; a reminder whose moment had passed when the
    # lesson was booked is not sent.
    lesson_reminders: tuple[str, ...] = ("86400", "3600")
    # Background work (the outbox, the TaskIQ workers, the scheduler)
    task_max_attempts: int = 8  # an outbox row failing this often is dead-lettered (`failed`)
    task_retry_base_seconds: int = 10  # the first retry's delay, doubled at each further one ...
    task_retry_max_seconds: int = 3600  # ... up to this
    # A claimed row not finished within its lease is published again: longer than any task.
    outbox_lease_seconds: int = 300
    outbox_poll_seconds: int = 2  # the relay's polling, besides LISTEN/NOTIFY on PostgreSQL
    outbox_batch_size: int = 100  # rows a relay claims at once
    task_stream_maxlen: int = 100_000  # entries kept in the Redis task stream (MAXLEN ~)
    # An unacknowledged stream entry is handed to another worker after this: longer than any task.
    task_idle_timeout_seconds: int = 600
    worker_concurrency: int = 20  # tasks one worker process runs at once
    worker_processes: int = 1  # `skillswap worker` processes unless --workers says otherwise
    worker_shutdown_timeout_seconds: int = 30  # on SIGTERM, running tasks get this long to finish
    # On SIGTERM `serve` stops accepting and gives the requests in flight this long to finish,
    # then closes WebSockets (1001) and exits; keep it under the orchestrator's kill grace.
    shutdown_timeout_seconds: int = 25
    # The scheduler's jobs, each every so many seconds
    order_deadlines_interval_seconds: int = 60  # order deadlines and review windows
    idempotency_sweep_interval_seconds: int = 3600  # expired Idempotency-Key records
    outbox_lease_check_interval_seconds: int = 30  # rows whose lease ran out, published again
    # Every ledger invariant; violations logged and mailed to the administrators.
    ledger_check_interval_seconds: int = 24 * 3600
    # The unread-chat digest: members away with messages unread for CHAT_DIGEST_DELAY_SECONDS
    # get one mail per room (at most one an hour), at most CHAT_DIGEST_BATCH_SIZE per run.
    lesson_reminders_interval_seconds: int = 60  # lesson reminders due, mailed and pushed
    chat_digest_interval_seconds: int = 300
    chat_digest_delay_seconds: int = 600
    chat_digest_batch_size: int = 500
    # Done outbox rows older than this are deleted by the sweep; failed ones are kept.
    outbox_retention_seconds: int = 7 * 24 * 3600
    outbox_sweep_interval_seconds: int = 3600
    # The statistics' daily rollup: closed UTC days not rolled up yet are added this often.
    stats_rollup_interval_seconds: int = 3600
    # Leaving: a deletion asked for is carried out this long after (cancellable until then); a
    # Google-only account asks within ACCOUNT_DELETION_REAUTH_SECONDS of signing in. A copy of
    # one's data (one a day) is fetched once within DATA_EXPORT_TTL_SECONDS of its mail.
    account_deletion_grace_seconds: int = 14 * 24 * 3600
    account_deletion_reauth_seconds: int = 300
    account_deletion_interval_seconds: int = 600  # how often due deletions are carried out
    data_export_ttl_seconds: int = 24 * 3600
    data_export_sweep_interval_seconds: int = 3600  # exports used or expired: files deleted
    # Email: SMTP when SMTP_HOST is set; otherwise every message is written to the log.
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_username: str = ""
    smtp_password: str = field(default="", repr=False)
    smtp_tls: str = "starttls"  # starttls (upgrade after connecting), tls (from the start), none
    smtp_timeout_seconds: int = 30
    email_from: str = "SkillSwap <no-reply@skillswap.invalid>"
    email_reply_to: str = ""
    # Realtime
    ws_allowed_origins: tuple[str, ...] = ()  # empty: only pages served from the same host
    ws_max_frame_bytes: int = 65_536  # a larger client frame closes the socket (1009)
    ws_rate_per_second: int = 20  # client frames per second, sustained ...
    ws_rate_burst: int = 60  # ... with this burst; faster closes the socket (4029)
    ws_outbound_max_bytes: int = 1_048_576  # unsent bytes before a client is too slow (4008)
    ws_ping_interval_seconds: int = 30  # 0 disables server pings
    ws_max_subscriptions: int = 500  # rooms one connection may follow
    ws_max_connections_per_user: int = 10  # open sockets per user on all nodes; more: 429
    chat_message_max_chars: int = 4000
    realtime_stream_maxlen: int = 1000  # entries kept per room stream (MAXLEN ~)
    realtime_idle_seconds: int = 30  # a room actor with no local subscriber stops after this
    # Push (FCM HTTP v1): the service account's JSON key file; empty: no push is sent.
    fcm_credentials_file: str = ""
    fcm_api_base: str = "https://fcm.googleapis.com"
    # Payments. A gateway is offered only when it is configured (Stripe: STRIPE_SECRET_KEY and
    # STRIPE_WEBHOOK_SECRET); the buyer comes back to PAYMENT_RETURN_URL (the web app's page,
    # with ?payment={id}&outcome=success|cancel added); empty: {PUBLIC_URL}/.
    payment_return_url: str = ""
    # Reconciliation (a scheduled job, and `skillswap payments reconcile`): every so often the
    # gateways are asked about payments still pending this long after their creation (a webhook
    # lost or never sent), at most PAYMENTS_RECONCILE_BATCH_SIZE of them per run, oldest first.
    payments_reconcile_interval_seconds: int = 300
    payments_reconcile_after_seconds: int = 900
    payments_reconcile_batch_size: int = 100
    stripe_secret_key: str = field(default="", repr=False)
    stripe_webhook_secret: str = field(default="", repr=False)
    stripe_api_base: str = "https://api.stripe.com"
    stripe_currencies: tuple[str, ...] = ()  # the currencies offered through Stripe; empty: any
    # A Stripe-Signature whose timestamp is older than this is refused (a replay).
    stripe_webhook_tolerance_seconds: int = 300
    # PayPal is offered when its REST app's client id and secret and the id of the webhook
    # registered for /api/payments/paypal/webhook/ are set. Sandbox: https://api-m.sandbox.paypal.com
    paypal_client_id: str = ""
    paypal_client_secret: str = field(default="", repr=False)
    paypal_webhook_id: str = ""
    paypal_api_base: str = "https://api-m.paypal.com"
    # The currencies offered through PayPal (those its REST API takes; HUF and TWD are left out,
    # PayPal taking no decimals in them); a package in another is refused.
    paypal_currencies: tuple[str, ...] = (
        "AUD", "BRL", "CAD", "CHF", "CNY", "CZK", "DKK", "EUR", "GBP", "HKD", "ILS", "JPY", "MXN",
        "MYR", "NOK", "NZD", "PHP", "PLN", "SEK", "SGD", "THB", "USD",
    )  # fmt: skip
    # Paymob (Egypt: cards and wallets) is offered when its secret key, public key, HMAC secret
    # and at least one integration id (the payment methods its checkout shows: the dashboard's
    # Developers > Payment Integrations, in the mode of the keys) are set.
    paymob_secret_key: str = field(default="", repr=False)
    paymob_public_key: str = ""
    paymob_hmac_secret: str = field(default="", repr=False)
    paymob_integration_ids: tuple[str, ...] = ()
    paymob_api_base: str = "https://accept.paymob.com"  # KSA: ksa.paymob.com, UAE: uae.paymob.com
    paymob_currencies: tuple[str, ...] = ("EGP",)
    # Locale
    default_locale: str = "en"

    @property
    def is_production(self) -> bool:
        """Production mode is any deployment with its own database."""
        return bool(self.database_url)

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return normalise_database_url(self.database_url)
        return f"sqlite+aiosqlite:///{Path(self.data_dir) / 'skillswap.sqlite3'}"

    @property
    def google_audiences(self) -> tuple[str, ...]:
        """The client ids an ID token may be issued to: GOOGLE_CLIENT_ID, then GOOGLE_CLIENT_IDS."""
        ids = (self.google_client_id, *self.google_client_ids)
        return tuple(dict.fromkeys(i for i in ids if i))

    @property
    def lesson_reminder_offsets(self) -> tuple[int, ...]:
        """LESSON_REMINDERS as whole seconds before the start, largest first, each once."""
        try:
            offsets = {int(value) for value in self.lesson_reminders}
        except ValueError:
            raise ConfigError("LESSON_REMINDERS must be whole seconds, comma-separated") from None
        if any(offset <= 0 for offset in offsets):
            raise ConfigError("LESSON_REMINDERS must be positive seconds before the start")
        return tuple(sorted(offsets, reverse=True))

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")

    def validate_for_serving(self) -> None:
        """Refuse configurations that would be unsafe to serve."""
        if self.web_workers < 1:
            raise ConfigError("WEB_WORKERS must be at least 1")
        if self.web_workers > 1 and (self.is_sqlite or not self.redis_url):
            # SQLite's writer lock and the in-process bridge hold within one process only.
            raise ConfigError("WEB_WORKERS above 1 needs DATABASE_URL (PostgreSQL) and REDIS_URL")
        if self.smtp_tls not in SMTP_TLS_MODES:
            raise ConfigError(f"SMTP_TLS must be one of: {', '.join(SMTP_TLS_MODES)}")
        if self.signup_bonus_on not in SIGNUP_BONUS_MOMENTS:
            raise ConfigError(f"SIGNUP_BONUS_ON must be one of: {', '.join(SIGNUP_BONUS_MOMENTS)}")
        if self.review_pair_period_days < 1:
            raise ConfigError("REVIEW_PAIR_PERIOD_DAYS must be at least 1")
        if self.refresh_reuse_grace_seconds < 0:
            raise ConfigError("REFRESH_REUSE_GRACE_SECONDS must be 0 (no grace) or more")
        if bool(self.turn_urls) != bool(self.turn_secret):
            raise ConfigError("TURN_URLS and TURN_SECRET go together")
        if self.turn_ttl_seconds < 60:
            raise ConfigError("TURN_TTL_SECONDS must be at least 60")
        _ = self.lesson_reminder_offsets  # a LESSON_REMINDERS that is not seconds fails here
        if not 256 <= self.call_signal_max_bytes <= self.ws_max_frame_bytes:
            raise ConfigError("CALL_SIGNAL_MAX_BYTES must be from 256 to WS_MAX_FRAME_BYTES")
        self.validate_storage()
        self.validate_rate_limits()
        if self.is_production and self.secret_key == DEV_SECRET_KEY:
            raise ConfigError(
                "SECRET_KEY is the development key; set a secret of your own when DATABASE_URL is set"
            )
        if self.is_production and len(self.secret_key) < 32 and self.jwt_algorithm == "HS256":
            raise ConfigError("SECRET_KEY must be at least 32 characters in production")

    def validate_rate_limits(self) -> None:
        """Refuse RATE_LIMITS naming a policy that does not exist or a rate that is not one."""
        from skillswap.auth.ratelimits import PolicyError, parse_policies

        try:
            parse_policies(self.rate_limits)  # the policies live beside their limiter
        except PolicyError as exc:
            raise ConfigError(str(exc)) from None
        if self.ws_max_connections_per_user < 1:
            raise ConfigError("WS_MAX_CONNECTIONS_PER_USER must be at least 1")

    def validate_storage(self) -> None:
        """Refuse an object storage configuration that could not store or serve an image."""
        if self.storage_backend not in STORAGE_BACKENDS:
            raise ConfigError(f"STORAGE_BACKEND must be one of: {', '.join(STORAGE_BACKENDS)}")
        if self.storage_backend != "s3":
            return
        if not self.s3_bucket:
            raise ConfigError("STORAGE_BACKEND=s3 needs S3_BUCKET")
        if bool(self.s3_access_key_id) != bool(self.s3_secret_access_key):
            raise ConfigError("S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY go together")
        if self.s3_public_base_url:
            return
        if not self.s3_access_key_id:
            raise ConfigError(
                "STORAGE_BACKEND=s3 without S3_PUBLIC_BASE_URL serves presigned URLs, which need"
                " S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY"
            )
        # A URL is signed for twice this (S3 takes at most 7 days), and cached listings keep
        # their URLs for a minute: below 5 minutes a client could get one about to expire.
        if not S3_PRESIGN_MIN_SECONDS <= self.s3_presign_seconds <= S3_PRESIGN_MAX_SECONDS:
            raise ConfigError(
                f"S3_PRESIGN_SECONDS must be between {S3_PRESIGN_MIN_SECONDS} and"
                f" {S3_PRESIGN_MAX_SECONDS}"
            )

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read every field from its environment variable (the upper-cased name unless named)."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(f.metadata.get("env", f.name.upper()))
            if raw is None:
                continue
            kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "")
            try:
                if kind == "bool":
                    values[f.name] = _bool(raw)
                elif kind == "int":
                    values[f.name] = int(raw)
                elif kind.startswith("tuple"):
                    values[f.name] = _list(raw)
                else:
                    values[f.name] = raw
            except ValueError as exc:
                raise ConfigError(f"{f.name.upper()}: {exc}") from exc
        return cls(**values)


def normalise_database_url(url: str) -> str:
    """Accept the usual `postgresql://` URLs and choose the async driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url[len("sqlite:///") :]
    return url
