"""The HMAC key of the hash operator and of hashed source keys."""

import logging
import os

from resources.scrub.config import DEV_SALT

log = logging.getLogger(__name__)


def resolve_salt(env_name: str) -> bytes:
    """The HMAC key from the named environment variable, or the documented dev default."""
    value = os.environ.get(env_name)
    if not value:
        log.warning("%s is unset: hashing PII with the public dev salt", env_name)
        value = DEV_SALT
    return value.encode("utf-8")
