"""Jira JSON → neutral types (and the few neutral → Jira pieces that need no I/O).

Works on both REST v2 (Server/DC, webhooks) and REST v3 (Cloud) shapes: users carry ``accountId`` on
Cloud and ``name``/``key`` on Server, text is ADF on v3 and wiki markup on v2. Pure functions, no I/O;
anything that needs a request (changelog pages, comment properties, attachment hashes) is fetched by
:mod:`node.trackers.jira.adapter` and passed in.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from dateutil import parser as date_parser

from node.trackers.base import ChangeItem, IssueSnapshot
from protocol.replica import Attachment, Comment, EntityRef, Link, StatusRef, UserRef, Worklog
from protocol.richtext import Doc, empty_doc

from .markup import from_native, is_adf

#: Issue property (and comment property) where Tandem stores its twin marker: ``{"marker": "..."}``.
MARKER_PROPERTY = "tandem.marker"
#: Jira Service Management's internal-comment flag: ``{"internal": true}`` hides it from customers.
SD_PUBLIC_COMMENT = "sd.public.comment"

#: Jira field id (or, in old changelogs without ``fieldId``, the field name) → neutral field name.
NEUTRAL_FIELDS: dict[str, str] = {
    "summary": "summary",
    "description": "description",
    "status": "status",
    "resolution": "resolution",
    "priority": "priority",
    "issuetype": "issue_type",
    "labels": "labels",
    "components": "components",
    "component": "components",
    "fixVersions": "fix_versions",
    "fix version": "fix_versions",
    "versions": "affects_versions",
    "version": "affects_versions",
    "duedate": "due_date",
    "assignee": "assignee",
    "reporter": "reporter",
    "parent": "parent",
    "attachment": "attachments",
    "comment": "comments",
    "issuelinks": "links",
    "link": "links",
    "worklogid": "worklogs",
    "timespent": "worklogs",
}

_STATUS_CATEGORIES = {"new", "indeterminate", "done"}


def parse_time(value: Any) -> dt.datetime | None:
    """Jira timestamps (``2019-02-15T19:11:18.321-0800``), ISO strings or epoch milliseconds."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return dt.datetime.fromtimestamp(value / 1000, tz=dt.UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        try:
            parsed = date_parser.isoparse(value)
        except (ValueError, OverflowError):
            return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed


def parse_date(value: Any) -> dt.date | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return dt.date.fromisoformat(value[:10])
    except ValueError:
        return None


def user_ref(obj: Any) -> UserRef | None:
    """A Jira user object (v2 or v3) → UserRef; hidden or placeholder emails are dropped."""
    if not isinstance(obj, dict):
        return None
    email = obj.get("emailAddress")
    if not isinstance(email, str) or "@" not in email:
        email = None
    ref = UserRef(
        email=email,
        display_name=_str_or_none(obj.get("displayName")),
        account_id=_str_or_none(obj.get("accountId")),
        username=_str_or_none(obj.get("name")),
    )
    return None if ref.is_empty() else ref


#: (accountId, name, displayName, emailAddress) → the UserRef made of them, within one mapping
UserMemo = dict[tuple[Any, ...], UserRef | None]


def _user(obj: Any, memo: UserMemo | None) -> UserRef | None:
    """:func:`user_ref` through ``memo``: an issue names the same few people over and over (every
    comment's author and update author), each its own JSON object. UserRefs are never changed in
    place, so one snapshot may share them."""
    if memo is None or not isinstance(obj, dict):
        return user_ref(obj)
    key = (obj.get("accountId"), obj.get("name"), obj.get("displayName"), obj.get("emailAddress"))
    try:
        return memo[key]
    except KeyError:
        ref = memo[key] = user_ref(obj)
        return ref
    except TypeError:  # an unhashable value where a string belongs
        return user_ref(obj)


def status_ref(obj: Any) -> StatusRef | None:
    if not isinstance(obj, dict) or not obj.get("name"):
        return None
    category = (obj.get("statusCategory") or {}).get("key")
    return StatusRef(name=str(obj["name"]), category=category if category in _STATUS_CATEGORIES else "new")


def neutral_field(field_id: str | None, field_name: str | None) -> str:
    if field_id:
        if field_id in NEUTRAL_FIELDS:
            return NEUTRAL_FIELDS[field_id]
        if field_id.startswith("customfield_"):
            return field_id
    name = (field_name or field_id or "").strip()
    return NEUTRAL_FIELDS.get(name, NEUTRAL_FIELDS.get(name.lower(), name))


def change_items(history: Mapping[str, Any], *, author: UserRef | None = None) -> list[ChangeItem]:
    """One changelog history (``{"author", "created", "items"}``) → ChangeItems. User fields prefer
    the accountId (``tmpToAccountId`` in webhooks) over the Server username."""
    at = parse_time(history.get("created")) or parse_time(history.get("timestamp"))
    if at is None:
        return []
    who = author or user_ref(history.get("author"))
    out: list[ChangeItem] = []
    for item in history.get("items") or []:
        if not isinstance(item, dict):
            continue
        out.append(
            ChangeItem(
                field=neutral_field(_str_or_none(item.get("fieldId")), _str_or_none(item.get("field"))),
                from_value=_str_or_none(item.get("fromString")),
                to_value=_str_or_none(item.get("toString")),
                from_id=_str_or_none(item.get("tmpFromAccountId") or item.get("from")),
                to_id=_str_or_none(item.get("tmpToAccountId") or item.get("to")),
                author=who,
                at=at,
            )
        )
    return out


def comment_internal(comment: Mapping[str, Any], properties: Mapping[str, Any] | None = None) -> bool:
    """Internal = visibility restricted, or JSM's ``sd.public.comment`` says internal, or
    ``jsdPublic`` is false."""
    if comment.get("visibility"):
        return True
    if comment.get("jsdPublic") is False:
        return True
    props = properties if properties is not None else entity_properties(comment.get("properties"))
    flag = props.get(SD_PUBLIC_COMMENT)
    return bool(isinstance(flag, dict) and flag.get("internal") is True)


def entity_properties(value: Any) -> dict[str, Any]:
    """Jira returns properties as ``[{"key", "value"}]`` (comments) or ``{key: value}`` (issues)."""
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, list):
        return {str(p["key"]): p.get("value") for p in value if isinstance(p, dict) and "key" in p}
    return {}


def marker_of(properties: Mapping[str, Any]) -> str | None:
    value = properties.get(MARKER_PROPERTY)
    if isinstance(value, dict) and isinstance(value.get("marker"), str):
        return str(value["marker"])
    if isinstance(value, str):
        return value
    return None


def marker_value(marker: str) -> dict[str, str]:
    return {"marker": marker}


def comment_of(
    obj: Mapping[str, Any], *, sent: Doc | None = None, users: UserMemo | None = None
) -> tuple[Comment, str | None]:
    """A Jira comment (with ``expand=properties`` when available) → (Comment, Tandem marker).
    ``sent``: the body just written, used as is instead of parsing Jira's rendering of it back."""
    props = entity_properties(obj.get("properties"))
    body = sent if sent is not None else from_native(obj.get("body")) or empty_doc()
    comment = Comment(
        id=str(obj.get("id", "")),
        author=_user(obj.get("author"), users),
        body=body,
        created=parse_time(obj.get("created")),
        updated=parse_time(obj.get("updated")),
        internal=comment_internal(obj, props),
    )
    return comment, marker_of(props)


def attachment_of(obj: Mapping[str, Any], sha256: str) -> Attachment:
    return Attachment(
        id=str(obj["id"]),
        filename=str(obj.get("filename") or f"attachment-{obj['id']}"),
        size=max(0, int(obj.get("size") or 0)),
        mime_type=str(obj.get("mimeType") or "application/octet-stream"),
        sha256=sha256,
        created=parse_time(obj.get("created")),
        author=user_ref(obj.get("author")),
        url=str(obj["content"]) if obj.get("content") else None,
    )


def custom_value(value: Any) -> Any:
    """A custom field value in neutral, JSON-friendly terms: options → their value (cascading
    ``"parent - child"``), users → UserRef dicts, versions/groups → names, ADF → neutral doc."""
    if value is None:
        return None
    if isinstance(value, list):
        return [custom_value(v) for v in value]
    if not isinstance(value, dict):
        return value
    if is_adf(value):
        return from_native(value)
    if "value" in value:
        child = value.get("child")
        if isinstance(child, dict) and "value" in child:
            return f"{value['value']} - {child['value']}"
        return value["value"]
    if "accountId" in value or ("name" in value and "displayName" in value):
        ref = user_ref(value)
        return ref.model_dump(exclude_none=True) if ref else None
    if "name" in value:
        return value["name"]
    return value


def links_of(fields: Mapping[str, Any]) -> list[Link]:
    out: list[Link] = []
    for link in fields.get("issuelinks") or []:
        if not isinstance(link, dict):
            continue
        kind = link.get("type") or {}
        for key, direction in (("outwardIssue", "outward"), ("inwardIssue", "inward")):
            target = link.get(key)
            if isinstance(target, dict):
                label = kind.get(direction) or kind.get("name") or "relates to"
                out.append(
                    Link(
                        type=str(kind.get("name") or label),
                        direction=direction,
                        target_key=_str_or_none(target.get("key")),
                        title=str(label),
                    )
                )
    return out


def worklogs_of(fields: Mapping[str, Any]) -> list[Worklog]:
    block = fields.get("worklog")
    rows = block.get("worklogs") if isinstance(block, dict) else None
    out: list[Worklog] = []
    for w in rows or []:
        if not isinstance(w, dict) or "id" not in w:
            continue
        out.append(
            Worklog(
                id=str(w["id"]),
                author=user_ref(w.get("author")),
                started=parse_time(w.get("started")),
                time_spent_seconds=max(0, int(w.get("timeSpentSeconds") or 0)),
                comment=from_native(w.get("comment")) if w.get("comment") else None,
            )
        )
    return out


def issue_snapshot(
    issue: Mapping[str, Any],
    *,
    base_url: str,
    names: Mapping[str, str] | None = None,
    histories: Sequence[Mapping[str, Any]] | None = None,
    comments: Sequence[Mapping[str, Any]] | None = None,
    attachment_hashes: Mapping[str, str] | None = None,
) -> IssueSnapshot:
    """Map one issue. ``histories``/``comments`` override the (possibly truncated) embedded ones;
    attachments whose hash is not in ``attachment_hashes`` are left out (the adapter computes them)."""
    fields: Mapping[str, Any] = issue.get("fields") or {}
    names = names or issue.get("names") or {}
    project = fields.get("project") or {}
    key = str(issue.get("key") or "")

    if histories is None:
        histories = list((issue.get("changelog") or {}).get("histories") or [])
    histories = sorted(
        (h for h in histories if isinstance(h, dict)),
        key=lambda h: parse_time(h.get("created")) or dt.datetime.min.replace(tzinfo=dt.UTC),
    )
    users: UserMemo = {}
    changelog = [item for h in histories for item in change_items(h, author=_user(h.get("author"), users))]

    if comments is None:
        comments = list((fields.get("comment") or {}).get("comments") or [])
    neutral_comments: list[Comment] = []
    markers: dict[str, str] = {}
    for c in comments:
        if not isinstance(c, dict) or "id" not in c:
            continue
        comment, marker = comment_of(c, users=users)
        neutral_comments.append(comment)
        if marker:
            markers[comment.id] = marker

    hashes = attachment_hashes or {}
    attachments = [
        attachment_of(a, hashes[str(a["id"])])
        for a in fields.get("attachment") or []
        if isinstance(a, dict) and str(a.get("id")) in hashes
    ]

    custom = {
        fid: custom_value(value)
        for fid, value in fields.items()
        if fid.startswith("customfield_") and value is not None
    }
    parent = fields.get("parent")
    votes = fields.get("votes")
    return IssueSnapshot(
        tracker="jira",
        id=str(issue.get("id") or ""),
        key=key,
        url=f"{base_url}/browse/{key}" if key else None,
        project=str(project.get("key") or (key.split("-")[0] if "-" in key else "")),
        summary=str(fields.get("summary") or ""),
        description=from_native(fields.get("description")),
        status=status_ref(fields.get("status")),
        resolution=_name(fields.get("resolution")),
        priority=_name(fields.get("priority")),
        issue_type=_name(fields.get("issuetype")),
        labels=[str(x) for x in fields.get("labels") or []],
        components=[n for n in (_name(c) for c in fields.get("components") or []) if n],
        fix_versions=[n for n in (_name(v) for v in fields.get("fixVersions") or []) if n],
        affects_versions=[n for n in (_name(v) for v in fields.get("versions") or []) if n],
        due_date=parse_date(fields.get("duedate")),
        assignee=_user(fields.get("assignee"), users),
        reporter=_user(fields.get("reporter"), users),
        creator=_user(fields.get("creator"), users),
        custom_fields=custom,
        field_names={str(k): str(v) for k, v in names.items()},
        comments=neutral_comments,
        comment_markers=markers,
        attachments=attachments,
        worklogs=worklogs_of(fields),
        links=links_of(fields),
        parent=(
            EntityRef(id=str(parent.get("id")), key=_str_or_none(parent.get("key")))
            if isinstance(parent, dict) and parent.get("id")
            else None
        ),
        properties=entity_properties(issue.get("properties")),
        votes=int(votes.get("votes") or 0) if isinstance(votes, dict) else 0,
        created=parse_time(fields.get("created")),
        updated=parse_time(fields.get("updated")),
        resolved=parse_time(fields.get("resolutiondate")),
        updated_by=_latest_actor(histories, comments, users) or _user(fields.get("creator"), users),
        changelog=changelog,
        raw=dict(issue),
    )


def _latest_actor(
    histories: Sequence[Mapping[str, Any]], comments: Sequence[Mapping[str, Any]], users: UserMemo
) -> UserRef | None:
    """Who touched the issue last: the author of the newest changelog entry or comment edit (the
    caller falls back to the creator: creation is the first change of all). An entry whose user maps
    to nothing does not compete."""
    best: tuple[dt.datetime, UserRef] | None = None
    for h in histories:
        at, who = parse_time(h.get("created")), _user(h.get("author"), users)
        if at and who and (best is None or at >= best[0]):
            best = (at, who)
    for c in comments:
        if not isinstance(c, dict):
            continue
        at = parse_time(c.get("updated")) or parse_time(c.get("created"))
        who = _user(c.get("updateAuthor"), users) or _user(c.get("author"), users)
        if at and who and (best is None or at >= best[0]):
            best = (at, who)
    return best[1] if best else None


def _name(obj: Any) -> str | None:
    if isinstance(obj, dict):
        return _str_or_none(obj.get("name") or obj.get("value"))
    return None


def _str_or_none(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return str(value)
