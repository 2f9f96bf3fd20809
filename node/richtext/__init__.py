"""Conversions between the neutral rich-text format (:mod:`protocol.richtext`) and tracker markup.

One module per format, each a pair of pure functions (no I/O)::

    from node.richtext.adf import to_adf, from_adf            # Atlassian Document Format (Jira Cloud v3)
    from node.richtext.wiki import to_wiki, from_wiki          # Jira wiki markup (Server/DC, v2, webhooks)
    from node.richtext.markdown import to_markdown, from_markdown  # GitHub-flavoured Markdown
    from node.richtext.html import to_html                      # safe HTML for display

Every ``from_X`` returns a doc in the canonical form of :func:`node.richtext.normalize.normalize`,
so ``from_X(to_X(doc)) == normalize(doc)`` for whatever the format can express. What each format
cannot express degrades to readable text; ``docs/rich-text.md`` lists every case.
"""

from __future__ import annotations

from .normalize import RichTextError, normalize

__all__ = ["RichTextError", "normalize"]
