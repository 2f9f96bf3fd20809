"""GitHub JSON ↔ neutral views (:class:`~node.trackers.base.IssueSnapshot`, Comment, UserRef), and
Tandem's twin markers. Pure: no I/O.

GitHub has no issue or comment properties, so Tandem's marker lives in the text itself, as a hidden
HTML comment on the last line::

    <!-- tandem:marker=<percent-encoded marker> -->

GitHub does not render HTML comments, and :func:`split_marker` removes the line before Markdown is
converted, so the neutral doc never shows it. The marker is percent-encoded so that no marker value
can close the comment early (``-->``) or inject markup.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, unquote

from node.richtext.markdown import from_markdown, to_markdown
from node.trackers.base import ChangeItem, IssueSnapshot
from protocol.replica import Comment, StatusRef, UserRef
from protocol.richtext import Doc

MARKER_PROPERTY = "tandem.marker"  # key in IssueSnapshot.properties (same as the Jira adapter)
_MARKER = re.compile(r"[ \t]*<!--[ \t]*tandem:marker=([A-Za-z0-9%._~!$&'()*+,;=:@/?-]*)[ \t]*-->[ \t]*\n?")
_KEY = re.compile(r"^([A-Za-z0-9_.-]+)/([A-Za-z0-9_.-]+)#(\d+)$")

OPEN = StatusRef(name="open", category="new")
CLOSED = StatusRef(name="closed", category="done")


def marker_comment(marker: str) -> str:
    return f"<!-- tandem:marker={quote(marker, safe='')} -->"


def split_marker(body: str | None) -> tuple[str, str | None]:
    """``(text without marker lines, marker or None)``; the last marker wins if there are several."""
    if not body:
        return "", None
    found = _MARKER.findall(body)
    if not found:
        return body, None
    text = _MARKER.sub("", body).rstrip()
    return text, unquote(found[-1])


def with_marker(markdown: str, marker: str | None) -> str:
    if not marker:
        return markdown
    markdown = markdown.rstrip()
    return f"{markdown}\n\n{marker_comment(marker)}" if markdown else marker_comment(marker)


def body_doc(body: str | None) -> tuple[Doc, str | None]:
    text, marker = split_marker(body)
    return from_markdown(text), marker


def doc_markdown(doc: Doc | None, marker: str | None = None) -> str:
    return with_marker(to_markdown(doc) if doc is not None else "", marker)


def parse_key(key: str) -> tuple[str, str, int] | None:
    """``owner/repo#N`` → (owner, repo, N); also accepts an API or HTML issue URL."""
    match = _KEY.match(key.strip())
    if match:
        return match.group(1), match.group(2), int(match.group(3))
    url = re.search(r"(?:/repos)?/([A-Za-z0-9_.-]+)/([A-Za-z0-9_.-]+)/issues/(\d+)/?$", key.strip())
    if url and "://" in key:
        return url.group(1), url.group(2), int(url.group(3))
    return None


def make_key(full_name: str, number: int) -> str:
    return f"{full_name}#{number}"


def parse_time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def user_ref(obj: Any) -> UserRef | None:
    """A GitHub user → UserRef: ``username`` is the login, ``account_id`` the numeric id."""
    if not isinstance(obj, dict) or not obj.get("login"):
        return None
    email = obj.get("email")
    name = obj.get("name")
    return UserRef(
        username=str(obj["login"]),
        account_id=str(obj["id"]) if obj.get("id") is not None else None,
        email=email if isinstance(email, str) and "@" in email else None,
        display_name=name if isinstance(name, str) and name else str(obj["login"]),
    )


def full_name_of(issue: dict[str, Any]) -> str:
    """``owner/repo`` from an issue's ``repository_url`` (or its ``repository`` object)."""
    repo = issue.get("repository")
    if isinstance(repo, dict) and isinstance(repo.get("full_name"), str):
        return str(repo["full_name"])
    url = str(issue.get("repository_url") or "")
    parts = url.rstrip("/").split("/")
    if len(parts) >= 2 and "repos" in parts:
        return f"{parts[-2]}/{parts[-1]}"
    raise ValueError("issue JSON names no repository")


def is_pull_request(issue: Any) -> bool:
    return isinstance(issue, dict) and issue.get("pull_request") is not None


def status_of(issue: dict[str, Any]) -> StatusRef:
    return CLOSED if issue.get("state") == "closed" else OPEN


def comment_of(obj: dict[str, Any]) -> tuple[Comment, str | None]:
    doc, marker = body_doc(obj.get("body"))
    comment = Comment(
        id=str(obj["id"]),
        author=user_ref(obj.get("user")),
        body=doc,
        created=parse_time(obj.get("created_at")),
        updated=parse_time(obj.get("updated_at")),
        internal=False,
    )
    return comment, marker


# event / action → (neutral field, the object the payload carries, its attribute, added?)
_TOGGLES: dict[str, tuple[str, str, str, bool]] = {
    "labeled": ("labels", "label", "name", True),
    "unlabeled": ("labels", "label", "name", False),
    "assigned": ("assignee", "assignee", "login", True),
    "unassigned": ("assignee", "assignee", "login", False),
    "milestoned": ("fix_versions", "milestone", "title", True),
    "demilestoned": ("fix_versions", "milestone", "title", False),
}


def event_change(
    kind: str, obj: Mapping[str, Any], author: UserRef | None, at: dt.datetime
) -> ChangeItem | None:
    """One change named the same way by an issue event (``event`` of ``/issues/{n}/events``) and by
    a webhook (``action`` of an ``issues`` delivery), which carry the same objects (label, assignee,
    milestone). None for anything else."""
    if kind in ("closed", "reopened"):
        closed = kind == "closed"
        return ChangeItem(
            field="status",
            from_value="open" if closed else "closed",
            to_value="closed" if closed else "open",
            author=author,
            at=at,
        )
    spec = _TOGGLES.get(kind)
    if spec is None or not isinstance(obj.get(spec[1]), dict):
        return None
    field, key, attr, added = spec
    value = _opt_str(obj[key].get(attr))
    ident = value if field == "assignee" else None  # a login is the user's id on GitHub
    return ChangeItem(
        field=field,
        from_value=None if added else value,
        to_value=value if added else None,
        from_id=None if added else ident,
        to_id=ident if added else None,
        author=author,
        at=at,
    )


def changelog_of(events: list[dict[str, Any]]) -> list[ChangeItem]:
    """``/issues/{n}/events`` → neutral change items, oldest first (body edits leave no event)."""
    out: list[ChangeItem] = []
    for ev in events:
        at = parse_time(ev.get("created_at"))
        kind = ev.get("event")
        if at is None or not isinstance(kind, str):
            continue
        author = user_ref(ev.get("actor"))
        item: ChangeItem | None = None
        if kind == "renamed" and isinstance(ev.get("rename"), dict):
            item = ChangeItem(
                field="summary",
                from_value=_opt_str(ev["rename"].get("from")),
                to_value=_opt_str(ev["rename"].get("to")),
                author=author,
                at=at,
            )
        else:
            item = event_change(kind, ev, author, at)
        if item is not None:
            out.append(item)
    out.sort(key=lambda c: c.at)
    return out


def last_actor(
    issue: dict[str, Any], events: list[dict[str, Any]], comments: list[dict[str, Any]], slack: float = 2.0
) -> UserRef | None:
    """Who made the issue's latest change, when GitHub says: the latest of creation, issue events
    and comment writes, if it is as recent as ``updated_at`` (within ``slack`` seconds). A body or
    title-only edit leaves no trace in the REST API, so then nobody is named (``None``)."""
    updated = parse_time(issue.get("updated_at"))
    candidates: list[tuple[dt.datetime, Any]] = []
    created = parse_time(issue.get("created_at"))
    if created is not None:
        candidates.append((created, issue.get("user")))
    for ev in events:
        at = parse_time(ev.get("created_at"))
        if at is not None:
            candidates.append((at, ev.get("actor")))
    for c in comments:
        at = parse_time(c.get("updated_at"))
        if at is not None:
            candidates.append((at, c.get("user")))
    if not candidates or updated is None:
        return None
    at, who = max(candidates, key=lambda pair: pair[0])
    if (updated - at).total_seconds() > slack:
        return None
    return user_ref(who)


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def issue_snapshot(
    issue: dict[str, Any],
    *,
    comments: list[dict[str, Any]] | None = None,
    events: list[dict[str, Any]] | None = None,
    full_name: str | None = None,
) -> IssueSnapshot:
    full_name = full_name or full_name_of(issue)
    key = make_key(full_name, int(issue["number"]))
    description, marker = body_doc(issue.get("body"))
    out_comments: list[Comment] = []
    markers: dict[str, str] = {}
    for raw in comments or []:
        comment, cmarker = comment_of(raw)
        out_comments.append(comment)
        if cmarker:
            markers[comment.id] = cmarker
    assignees = [u for u in (user_ref(a) for a in issue.get("assignees") or []) if u is not None]
    if not assignees and issue.get("assignee"):
        single = user_ref(issue.get("assignee"))
        assignees = [single] if single else []
    milestone = issue.get("milestone")
    state_reason = issue.get("state_reason")
    closed = issue.get("state") == "closed"
    custom: dict[str, Any] = {
        "assignees": [a.username for a in assignees],
        "milestone": milestone.get("title") if isinstance(milestone, dict) else None,
        "state_reason": state_reason,
        "locked": bool(issue.get("locked")),
        "github_id": issue.get("id"),
    }
    return IssueSnapshot(
        tracker="github",
        id=key,
        key=key,
        url=issue.get("html_url"),
        project=full_name,
        summary=str(issue.get("title") or ""),
        description=description,
        status=status_of(issue),
        resolution=(state_reason or "completed") if closed else None,
        labels=[str(lb["name"]) for lb in issue.get("labels") or [] if isinstance(lb, dict) and "name" in lb],
        fix_versions=[str(milestone["title"])]
        if isinstance(milestone, dict) and milestone.get("title")
        else [],
        assignee=assignees[0] if assignees else None,
        reporter=user_ref(issue.get("user")),
        creator=user_ref(issue.get("user")),
        custom_fields=custom,
        field_names={
            "assignees": "Assignees",
            "milestone": "Milestone",
            "state_reason": "State reason",
            "locked": "Locked",
            "github_id": "GitHub id",
        },
        comments=out_comments,
        comment_markers=markers,
        properties={MARKER_PROPERTY: {"marker": marker}} if marker else {},
        votes=int((issue.get("reactions") or {}).get("+1") or 0),
        created=parse_time(issue.get("created_at")),
        updated=parse_time(issue.get("updated_at")),
        resolved=parse_time(issue.get("closed_at")) if closed else None,
        updated_by=last_actor(issue, events or [], comments or []),
        changelog=changelog_of(events or []),
        raw=issue,
    )
