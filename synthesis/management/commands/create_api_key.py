"""`manage.py create_api_key NAME [--rate-limit N] [--expires-days D] [--url URL] [--quiet]`: create an API key
and print it once."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from synthesis.models import ApiKey

NAME_MAX: int = ApiKey._meta.get_field("name").max_length or 50


class Command(BaseCommand):
    help = "Create an API key and print it. Only a hash is stored: the key cannot be shown again."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help=f"Who or what the key is for (up to {NAME_MAX} characters).")
        parser.add_argument(
            "--rate-limit",
            type=int,
            default=None,
            metavar="N",
            help="Requests per minute (default: BARK_RATE_LIMIT_PER_MIN).",
        )
        parser.add_argument("--expires-days", type=int, default=None, metavar="D", help="Expire the key after D days.")
        parser.add_argument(
            "--url",
            default=None,
            help="Where the service is, for the printed example (default: http://127.0.0.1:$PORT, as bin/serve).",
        )
        parser.add_argument("--quiet", action="store_true", help="Print only the key (for scripts: KEY=$(...)).")

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["name"].strip()
        if not name:
            raise CommandError("NAME must not be blank: say who or what the key is for.")
        if len(name) > NAME_MAX:
            raise CommandError(f"NAME has {len(name)} characters; the limit is {NAME_MAX}.")
        rate = options["rate_limit"]
        if rate is not None and rate < 1:
            raise CommandError("--rate-limit must be a whole number of requests per minute, at least 1.")
        days = options["expires_days"]
        if days is not None and days < 1:
            raise CommandError("--expires-days must be at least 1.")
        expiry = timezone.now() + timedelta(days=days) if days else None

        api_key, key = ApiKey.objects.create_key(name=name, rate_limit_per_min=rate, expiry_date=expiry)
        if options["quiet"]:
            self.stdout.write(key)
            return

        limit = f"{rate} requests/min" if rate else "the default rate limit (BARK_RATE_LIMIT_PER_MIN)"
        expires = f", expires {expiry:%Y-%m-%d %H:%M} UTC" if expiry else ""
        self.stdout.write(self.style.SUCCESS(f"Created API key {api_key.prefix!r} for {name!r} ({limit}{expires})."))
        self.stdout.write("Store it now; it is not shown again:\n")
        self.stdout.write(f"    {key}\n")
        self.stdout.write("Use it as a header:  X-API-Key: <key>   or   Authorization: Bearer <key>")
        url = (options["url"] or f"http://127.0.0.1:{os.environ.get('PORT') or 8000}").rstrip("/")
        self.stdout.write(f"e.g. curl -H 'X-API-Key: {key}' {url}/api/bark/jobs")
