"""How Slack's ``{"ok": false, "error": "<code>"}`` answers are classified.

Slack answers most failures with HTTP 200 and an error code in the body; only
rate limiting (429) and outages (5xx) show in the status. A code not listed is
permanent: Slack documents each method's codes, and the unknown ones are almost
always a request Slack will refuse again.
"""

from __future__ import annotations

import enum

__all__ = ["RETRYABLE", "Verdict", "verdict_for"]


class Verdict(enum.Enum):
    """What to do with an ``ok: false`` answer."""

    RETRYABLE = "retryable"
    """A later attempt may succeed."""
    PERMANENT = "permanent"
    """Retrying cannot help."""
    REFRESH = "refresh"
    """The rotated access token expired: refresh it and try once more."""


RETRYABLE = frozenset(
    {
        "ratelimited",
        "rate_limited",
        "internal_error",
        "fatal_error",
        "service_unavailable",
        "request_timeout",
        "team_added_to_org",  # an Enterprise migration in progress; it ends
    }
)
"""Codes a later attempt may not meet."""

REFRESH = frozenset({"token_expired"})

HINTS = {
    "channel_not_found": "check the channel ID or name, and that the bot can see it",
    "not_in_channel": "invite the bot to the channel (/invite @bot)",
    "is_archived": "the channel is archived; unarchive it or post elsewhere",
    "invalid_auth": "check the connection's token",
    "not_authed": "the connection sent no token; check its token setting",
    "account_inactive": "the bot or its workspace was deactivated; reinstall the app",
    "token_revoked": "the token was revoked; reinstall the app and update the secret",
    "token_expired": "set up token rotation (refresh_token, client_id, client_secret)",
    "missing_scope": "add the chat:write scope to the app and reinstall it",
    "msg_too_long": "shorten the text (Slack's limit is 40,000 characters)",
    "no_text": "map text or blocks in the step's payload",
    "invalid_blocks": "fix the Block Kit blocks (try them in Block Kit Builder)",
    "invalid_refresh_token": "the refresh token was used or revoked; reinstall the app",
}


def verdict_for(code: str) -> Verdict:
    """The verdict for Slack error ``code``; unknown codes are permanent."""
    if code in RETRYABLE:
        return Verdict.RETRYABLE
    if code in REFRESH:
        return Verdict.REFRESH
    return Verdict.PERMANENT
