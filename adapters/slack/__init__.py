"""The ``slack`` adapter: posts messages to Slack channels with ``chat.postMessage``.

::

    connections:
      alerts:
        adapter: slack
        settings:
          token: {env: SLACK_BOT_TOKEN}
          default_channel: "#ops-alerts"

A step sends ``alerts.post_message`` with ``{channel?, text, blocks?, thread_ts?}``
and gets ``{channel, ts}`` back. Slack's ``{"ok": false, "error": ...}`` answers
are classified by code; 429 ``Retry-After`` is honoured. Token rotation
(``refresh_token``, ``client_id``, ``client_secret``) is supported. See
``docs/adapters/slack.md``.
"""

from .adapter import SlackAdapter
from .models import PostMessageInput, SlackSettings

__all__ = ["PostMessageInput", "SlackAdapter", "SlackSettings"]
