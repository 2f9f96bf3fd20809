"""Rendering of the emulator's model in Jira's REST shapes (v2: wiki text, v3: ADF).

Shapes follow the Cloud OpenAPI spec and the recorded payloads in ``vendor-data/dev``; where the two
disagree the recordings win (noted inline). Server mode identifies users by ``name``/``key``, Cloud
by ``accountId`` (and never sends ``name``/``key``, as Cloud does since GDPR strict mode).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from .ops import SETTABLE_ON_CREATE
from .state import (
    AttachmentRecord,
    Comment,
    CustomField,
    EmulatorState,
    History,
    Issue,
    IssueType,
    Priority,
    Project,
    Status,
    User,
    jira_time,
)
from .text import render_body, to_html, to_wiki

CATEGORIES: dict[str, dict[str, Any]] = {
    "undefined": {"id": 1, "key": "undefined", "colorName": "medium-gray", "name": "No Category"},
    "new": {"id": 2, "key": "new", "colorName": "blue-gray", "name": "To Do"},
    "done": {"id": 3, "key": "done", "colorName": "green", "name": "Done"},
    "indeterminate": {"id": 4, "key": "indeterminate", "colorName": "yellow", "name": "In Progress"},
}

# System fields: id -> (name, schema, clause names, orderable, navigable, searchable)
SYSTEM_FIELDS: dict[str, tuple[str, dict[str, Any] | None, list[str], bool, bool, bool]] = {
    "summary": ("Summary", {"type": "string", "system": "summary"}, ["summary"], True, True, True),
    "description": (
        "Description",
        {"type": "string", "system": "description"},
        ["description"],
        True,
        True,
        True,
    ),
    "environment": (
        "Environment",
        {"type": "string", "system": "environment"},
        ["environment"],
        True,
        True,
        True,
    ),
    "issuetype": (
        "Issue Type",
        {"type": "issuetype", "system": "issuetype"},
        ["issuetype", "type"],
        True,
        True,
        True,
    ),
    "project": ("Project", {"type": "project", "system": "project"}, ["project"], False, True, True),
    "priority": ("Priority", {"type": "priority", "system": "priority"}, ["priority"], True, True, True),
    "status": ("Status", {"type": "status", "system": "status"}, ["status"], False, True, True),
    "resolution": (
        "Resolution",
        {"type": "resolution", "system": "resolution"},
        ["resolution"],
        True,
        True,
        True,
    ),
    "resolutiondate": (
        "Resolved",
        {"type": "datetime", "system": "resolutiondate"},
        ["resolutiondate", "resolved"],
        False,
        True,
        True,
    ),
    "labels": (
        "Labels",
        {"type": "array", "items": "string", "system": "labels"},
        ["labels"],
        True,
        True,
        True,
    ),
    "components": (
        "Components",
        {"type": "array", "items": "component", "system": "components"},
        ["component"],
        True,
        True,
        True,
    ),
    "fixVersions": (
        "Fix versions",
        {"type": "array", "items": "version", "system": "fixVersions"},
        ["fixVersion"],
        True,
        True,
        True,
    ),
    "versions": (
        "Affects versions",
        {"type": "array", "items": "version", "system": "versions"},
        ["affectedVersion"],
        True,
        True,
        True,
    ),
    "duedate": ("Due date", {"type": "date", "system": "duedate"}, ["due", "duedate"], True, True, True),
    "assignee": ("Assignee", {"type": "user", "system": "assignee"}, ["assignee"], True, True, True),
    "reporter": ("Reporter", {"type": "user", "system": "reporter"}, ["reporter"], True, True, True),
    "creator": ("Creator", {"type": "user", "system": "creator"}, ["creator"], False, True, True),
    "created": (
        "Created",
        {"type": "datetime", "system": "created"},
        ["created", "createdDate"],
        False,
        True,
        True,
    ),
    "updated": (
        "Updated",
        {"type": "datetime", "system": "updated"},
        ["updated", "updatedDate"],
        False,
        True,
        True,
    ),
    "statuscategorychangedate": (
        "Status Category Changed",
        {"type": "datetime", "system": "statuscategorychangedate"},
        ["statusCategoryChangedDate"],
        False,
        True,
        True,
    ),
    "comment": ("Comment", {"type": "comments-page", "system": "comment"}, ["comment"], True, False, True),
    "attachment": (
        "Attachment",
        {"type": "array", "items": "attachment", "system": "attachment"},
        ["attachments"],
        True,
        True,
        True,
    ),
    "watches": ("Watchers", {"type": "watches", "system": "watches"}, ["watchers"], False, True, True),
    "votes": ("Votes", {"type": "votes", "system": "votes"}, ["votes"], False, True, True),
    "issuelinks": (
        "Linked Issues",
        {"type": "array", "items": "issuelinks", "system": "issuelinks"},
        ["issueLink"],
        True,
        True,
        True,
    ),
    "subtasks": (
        "Sub-tasks",
        {"type": "array", "items": "issuelinks", "system": "subtasks"},
        ["subtasks"],
        False,
        True,
        True,
    ),
    "issuekey": ("Key", None, ["id", "issue", "issuekey", "key"], False, True, True),
}

CUSTOM_TYPES: dict[str, tuple[dict[str, Any], str, str]] = {
    # kind -> (schema without custom/customId, custom type key, searcher)
    "text": ({"type": "string"}, "textfield", "textsearcher"),
    "textarea": ({"type": "string"}, "textarea", "textsearcher"),
    "url": ({"type": "string"}, "url", "exacttextsearcher"),
    "number": ({"type": "number"}, "float", "exactnumber"),
    "select": ({"type": "option"}, "select", "multiselectsearcher"),
    "multiselect": ({"type": "array", "items": "option"}, "multiselect", "multiselectsearcher"),
    "user": ({"type": "user"}, "userpicker", "userpickergroupsearcher"),
    "date": ({"type": "date"}, "datepicker", "daterange"),
    "labels": ({"type": "array", "items": "string"}, "labels", "labelsearcher"),
}

NAVIGABLE_EXCLUDED = {"comment"}


def avatar_urls(seed: str) -> dict[str, str]:
    return dict(_avatar_urls(seed))  # a copy: the caller may change its answer


@functools.lru_cache(maxsize=4096)
def _avatar_urls(seed: str) -> tuple[tuple[str, str], ...]:
    base = f"https://avatar.example.invalid/{seed}"
    return tuple((f"{n}x{n}", f"{base}?s={n}") for n in (48, 24, 16, 32))


class RenderMemo:
    """Renderings of users and comments kept between webhook events and the reads that follow them:
    a comment rendered for its ``issue_commented`` event is served again by the node's search by id
    and comment list, and a user shows up ~20 times in one issue. An entry is reused only while
    what it was rendered from is the same (stored bodies are replaced, never changed in place, so a
    body is compared by identity); a hit is the very dict rendered before, so only callers that
    serialise their answer at once and never change it may use a memo (one that adds a key copies
    the dict first)."""

    def __init__(self, limit: int = 8192) -> None:
        self.limit = limit
        self.scope: tuple[str, int, str] | None = None  # (base URL, API version, mode) of the entries
        self.users: dict[str, tuple[tuple[Any, ...], dict[str, Any]]] = {}
        self.comments: dict[tuple[str, str], tuple[tuple[Any, ...], dict[str, Any]]] = {}

    def evict(self, table: dict[Any, Any]) -> None:
        if len(table) > self.limit:
            del table[next(iter(table))]  # the oldest: events come issue by issue

    def clear(self) -> None:
        self.users.clear()
        self.comments.clear()


@dataclass
class View:
    """How to render: which site, which base URL, which API version (2 or 3); ``memo`` reuses
    renderings between calls (see :class:`RenderMemo` for who may use one)."""

    state: EmulatorState
    base: str
    api: int = 2
    memo: RenderMemo | None = None

    def __post_init__(self) -> None:
        if self.memo is not None and self.memo.scope != (self.base, self.api, self.state.mode):
            self.memo.clear()
            self.memo.scope = (self.base, self.api, self.state.mode)

    @property
    def cloud(self) -> bool:
        return self.state.mode == "cloud"

    def rest(self, path: str, api: int | None = None) -> str:
        return f"{self.base}/rest/api/{api or self.api}/{path}"

    # ------------------------------------------------------------------ users

    def user(self, user: User | None, *, full: bool = False) -> dict[str, Any] | None:
        if user is None:
            return None
        memo = self.memo
        if memo is None or full:
            return self._user(user, full=full)
        key = user.key
        stamp = (user.name, user.account_id, user.email, user.display_name, user.active, user.time_zone)
        hit = memo.users.get(key)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        out = self._user(user)
        memo.users[key] = (stamp, out)
        memo.evict(memo.users)
        return out

    def _user(self, user: User, *, full: bool = False) -> dict[str, Any]:
        out: dict[str, Any]
        if self.cloud:
            out = {
                "self": self.rest(f"user?accountId={user.account_id}"),
                "accountId": user.account_id,
                "accountType": "atlassian",
                "emailAddress": user.email,
                "avatarUrls": avatar_urls(user.account_id),
                "displayName": user.display_name,
                "active": user.active,
                "timeZone": user.time_zone,
            }
        else:
            out = {
                "self": self.rest(f"user?username={user.name}"),
                "name": user.name,
                "key": user.key,
                "emailAddress": user.email,
                "avatarUrls": avatar_urls(user.key),
                "displayName": user.display_name,
                "active": user.active,
                "timeZone": user.time_zone,
            }
        if full:
            out["locale"] = "en_US"
            out["groups"] = {
                "size": len(user.groups),
                "items": [self.group_item(g) for g in user.groups],
            }
            out["applicationRoles"] = {"size": 1, "items": []}
            out["expand"] = "groups,applicationRoles"
        return out

    def user_key(self, key: str | None) -> dict[str, Any] | None:
        return self.user(self.state.users.get(key) if key else None)

    def group_item(self, name: str) -> dict[str, Any]:
        group = self.state.add_group(name)
        return {
            "name": group.name,
            "groupId": group.group_id,
            "self": self.rest(f"group?groupId={group.group_id}"),
        }

    # ------------------------------------------------------------------ reference data

    def status_category(self, key: str) -> dict[str, Any]:
        cat = CATEGORIES[key]
        return {"self": self.rest(f"statuscategory/{cat['id']}"), **cat}

    def status(self, status: Status) -> dict[str, Any]:
        return {
            "self": self.rest(f"status/{status.id}"),
            "description": status.description,
            "iconUrl": f"{self.base}/images/icons/statuses/generic.png",
            "name": status.name,
            "id": status.id,
            "statusCategory": self.status_category(status.category),
        }

    def issuetype(self, itype: IssueType) -> dict[str, Any]:
        return {
            "self": self.rest(f"issuetype/{itype.id}"),
            "id": itype.id,
            "description": itype.description,
            "iconUrl": f"{self.base}/secure/viewavatar?size=medium&avatarId={itype.avatar_id}"
            "&avatarType=issuetype",
            "name": itype.name,
            "subtask": itype.subtask,
            "avatarId": itype.avatar_id,
            "hierarchyLevel": -1 if itype.subtask else (1 if itype.name == "Epic" else 0),
        }

    def priority(self, prio: Priority) -> dict[str, Any]:
        return {
            "self": self.rest(f"priority/{prio.id}"),
            "statusColor": prio.color,
            "description": prio.description,
            "iconUrl": f"{self.base}/images/icons/priorities/{prio.icon}.svg",
            "name": prio.name,
            "id": prio.id,
        }

    def priority_short(self, prio: Priority) -> dict[str, Any]:
        return {
            "self": self.rest(f"priority/{prio.id}"),
            "iconUrl": f"{self.base}/images/icons/priorities/{prio.icon}.svg",
            "name": prio.name,
            "id": prio.id,
        }

    def resolution(self, rid: str) -> dict[str, Any]:
        res = self.state.resolutions[rid]
        return {
            "self": self.rest(f"resolution/{res.id}"),
            "id": res.id,
            "description": res.description,
            "name": res.name,
        }

    def project_avatars(self, project: Project) -> dict[str, str]:
        return {
            f"{n}x{n}": f"{self.base}/secure/projectavatar?pid={project.id}&s={n}" for n in (48, 24, 16, 32)
        }

    def project_short(self, project: Project) -> dict[str, Any]:
        return {
            "self": self.rest(f"project/{project.id}"),
            "id": project.id,
            "key": project.key,
            "name": project.name,
            "projectTypeKey": project.project_type,
            "simplified": False,
            "avatarUrls": self.project_avatars(project),
        }

    def component(self, project: Project, cid: str) -> dict[str, Any] | None:
        comp = next((c for c in project.components if c.id == cid), None)
        if comp is None:
            return None
        return {
            "self": self.rest(f"component/{comp.id}"),
            "id": comp.id,
            "name": comp.name,
            "description": comp.description,
        }

    def version(self, project: Project, vid: str) -> dict[str, Any] | None:
        ver = next((v for v in project.versions if v.id == vid), None)
        if ver is None:
            return None
        return {
            "self": self.rest(f"version/{ver.id}"),
            "id": ver.id,
            "description": "",
            "name": ver.name,
            "archived": ver.archived,
            "released": ver.released,
            "projectId": int(project.id),
        }

    def project(self, project: Project) -> dict[str, Any]:
        return {
            "expand": "description,lead,issueTypes,url,projectKeys,permissions,insight",
            **self.project_short(project),
            "description": project.description,
            "lead": self.user_key(project.lead),
            "components": [self.component(project, c.id) for c in project.components],
            "issueTypes": [self.issuetype(self.state.issue_types[t]) for t in project.issue_types],
            "assigneeType": "UNASSIGNED",
            "versions": [self.version(project, v.id) for v in project.versions],
            "roles": {},
            "isPrivate": False,
            "properties": {},
        }

    # ------------------------------------------------------------------ fields

    def field_details(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for fid, (name, schema, clauses, orderable, navigable, searchable) in SYSTEM_FIELDS.items():
            row: dict[str, Any] = {
                "id": fid,
                "key": fid,
                "name": name,
                "custom": False,
                "orderable": orderable,
                "navigable": navigable,
                "searchable": searchable,
                "clauseNames": clauses,
            }
            if schema is not None:
                row["schema"] = schema
            out.append(row)
        for field in self.state.custom_fields.values():
            out.append(
                {
                    "id": field.id,
                    "key": field.id,
                    "name": field.name,
                    "custom": True,
                    "orderable": True,
                    "navigable": True,
                    "searchable": True,
                    "clauseNames": [f"cf[{field.id.split('_')[1]}]", field.name],
                    "schema": self.custom_schema(field),
                }
            )
        return out

    def custom_schema(self, field: CustomField) -> dict[str, Any]:
        schema, ctype, _ = CUSTOM_TYPES[field.kind]
        return {
            **schema,
            "custom": f"com.atlassian.jira.plugin.system.customfieldtypes:{ctype}",
            "customId": int(field.id.split("_")[1]),
        }

    def option(self, option_id: str) -> dict[str, Any] | None:
        for field in self.state.custom_fields.values():
            for opt in field.options:
                if opt.id == option_id:
                    return {
                        "self": self.rest(f"customFieldOption/{opt.id}"),
                        "value": opt.value,
                        "id": opt.id,
                    }
        return None

    def custom_value(self, field: CustomField, value: Any) -> Any:
        if value is None:
            return None
        if field.kind == "select":
            return self.option(value)
        if field.kind == "multiselect":
            return [o for o in (self.option(v) for v in value) if o is not None]
        if field.kind == "user":
            return self.user_key(value)
        if field.kind == "textarea":
            return render_body(value, api=self.api)
        return value

    def field_meta(self, fid: str, project: Project, *, create: bool) -> dict[str, Any] | None:
        """One field's create/edit metadata (allowed values, operations, required)."""
        state = self.state
        if fid in state.custom_fields:
            field = state.custom_fields[fid]
            meta: dict[str, Any] = {
                "required": False,
                "schema": self.custom_schema(field),
                "name": field.name,
                "key": fid,
                "operations": ["add", "set", "remove"]
                if field.kind in ("multiselect", "labels")
                else ["set"],
                "hasDefaultValue": False,
            }
            if field.kind in ("select", "multiselect"):
                meta["allowedValues"] = [self.option(o.id) for o in field.options if not o.disabled]
            if field.kind == "user":
                meta["autoCompleteUrl"] = self.rest("user/picker?query=")
            return meta
        if fid not in SYSTEM_FIELDS:
            return None
        name, schema, _, _, _, _ = SYSTEM_FIELDS[fid]
        meta = {
            "required": fid in ("summary", "issuetype", "project") or (create and fid == "reporter"),
            "schema": schema,
            "name": name,
            "key": fid,
            "hasDefaultValue": fid in ("priority", "reporter"),
            "operations": ["set"],
        }
        if fid in ("labels", "components", "fixVersions", "versions"):
            meta["operations"] = ["add", "set", "remove"]
        if fid == "issuetype":
            meta["allowedValues"] = [self.issuetype(state.issue_types[t]) for t in project.issue_types]
            meta["operations"] = [] if create else ["set"]
        elif fid == "project":
            meta["allowedValues"] = [self.project_short(project)]
        elif fid == "priority":
            meta["allowedValues"] = [self.priority_short(p) for p in state.priorities.values()]
            meta["defaultValue"] = self.priority_short(state.priorities["3"])
        elif fid == "components":
            meta["allowedValues"] = [self.component(project, c.id) for c in project.components]
        elif fid in ("fixVersions", "versions"):
            meta["allowedValues"] = [self.version(project, v.id) for v in project.versions]
        elif fid in ("assignee", "reporter"):
            meta["autoCompleteUrl"] = self.rest(f"user/assignable/search?project={project.key}&query=")
        elif fid == "labels":
            meta["autoCompleteUrl"] = f"{self.base}/rest/api/1.0/labels/suggest?query="
        elif fid == "description" and self.api >= 3:
            pass
        elif fid == "resolution":
            meta["allowedValues"] = [self.resolution(r) for r in state.resolutions]
        if fid == "comment":
            meta["operations"] = ["add", "edit", "remove"]
        return meta

    # What create/edit metadata advertise: the fields ops accepts, plus ``project`` (create only),
    # ``attachment`` and ``comment`` (written through their own endpoints or ``update``).
    CREATE_FIELDS = (*SETTABLE_ON_CREATE[:2], "project", *SETTABLE_ON_CREATE[2:], "attachment")
    EDIT_FIELDS = (*SETTABLE_ON_CREATE, "comment", "resolution")

    def meta_fields(self, project: Project, *, create: bool) -> dict[str, Any]:
        ids = list(self.CREATE_FIELDS if create else self.EDIT_FIELDS) + list(self.state.custom_fields)
        out: dict[str, Any] = {}
        for fid in ids:
            meta = self.field_meta(fid, project, create=create)
            if meta is not None:
                out[fid] = meta
        return out

    # ------------------------------------------------------------------ comments, attachments, history

    def comment(self, issue: Issue, comment: Comment, *, rendered: bool = False) -> dict[str, Any]:
        memo = self.memo
        if memo is None or rendered:
            return self._comment(issue, comment, rendered=rendered)
        author = self.user_key(comment.author)
        update_author = self.user_key(comment.update_author)
        key = (issue.id, comment.id)
        visibility, internal = comment.visibility, comment.internal
        hit = memo.comments.get(key)
        if hit is not None:
            (body, was_author, was_update_author, created, updated, was_visibility, was_internal), out = hit
            # Users by identity: the memo hands out the same dict while a user is unchanged.
            if (
                body is comment.body
                and was_author is author
                and was_update_author is update_author
                and created == comment.created
                and updated == comment.updated
                and was_visibility == visibility
                and was_internal == internal
            ):
                return out
        out = self._comment(issue, comment, author=author, update_author=update_author)
        kept = dict(visibility) if visibility is not None else None
        memo.comments[key] = (
            (comment.body, author, update_author, comment.created, comment.updated, kept, internal),
            out,
        )
        memo.evict(memo.comments)
        return out

    def _comment(
        self,
        issue: Issue,
        comment: Comment,
        *,
        rendered: bool = False,
        author: dict[str, Any] | None = None,
        update_author: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        out: dict[str, Any] = {
            "self": self.rest(f"issue/{issue.id}/comment/{comment.id}"),
            "id": comment.id,
            "author": author if author is not None else self.user_key(comment.author),
            "body": render_body(comment.body, api=self.api),
            "updateAuthor": update_author
            if update_author is not None
            else self.user_key(comment.update_author),
            "created": jira_time(comment.created),
            "updated": jira_time(comment.updated),
        }
        if comment.visibility is not None:
            out["visibility"] = dict(comment.visibility)
        if self.cloud:
            out["jsdPublic"] = not comment.internal
        if rendered:
            out["renderedBody"] = to_html(comment.body)
        return out

    def attachment(self, rec: AttachmentRecord) -> dict[str, Any]:
        if self.cloud:
            content = f"{self.base}/rest/api/3/attachment/content/{rec.id}"
        else:
            content = f"{self.base}/secure/attachment/{rec.id}/{rec.filename}"
        return {
            "self": self.rest(f"attachment/{rec.id}"),
            "id": rec.id,
            "filename": rec.filename,
            "author": self.user_key(rec.author),
            "created": jira_time(rec.created),
            "size": len(rec.content),
            "mimeType": rec.mime_type,
            "content": content,
        }

    def history(self, history: History, *, webhook: bool = False) -> dict[str, Any]:
        items = []
        for item in history.items:
            row: dict[str, Any] = {
                "field": item.field,
                "fieldtype": item.fieldtype,
                "fieldId": item.field_id,
                "from": item.from_,
                "fromString": item.from_string,
                "to": item.to,
                "toString": item.to_string,
            }
            if webhook and self.cloud and item.field_id in ("assignee", "reporter"):
                # Cloud webhooks carry these two extra keys for user fields (see the recordings).
                row["tmpFromAccountId"] = item.from_
                row["tmpToAccountId"] = item.to
            items.append(row)
        if webhook:
            return {"id": history.id, "items": items}
        return {
            "id": history.id,
            "author": self.user_key(history.author),
            "created": jira_time(history.created),
            "items": items,
        }

    # ------------------------------------------------------------------ issues

    def all_field_values(
        self,
        issue: Issue,
        *,
        rendered: bool = False,
        only: set[str] | None = None,
        comments: bool = True,
    ) -> dict[str, Any]:
        """Every field's value; with ``only``, the costly ones outside it are skipped (searches)."""
        state = self.state
        project = state.projects[issue.project]
        f: dict[str, Any] = {}
        f["summary"] = issue.summary
        if only is not None and not only & {"description", "environment"}:
            pass
        elif rendered:
            f["description"] = to_html(issue.description) if issue.description is not None else None
            f["environment"] = to_html(issue.environment) if issue.environment is not None else None
        else:
            f["description"] = render_body(issue.description, api=self.api)
            f["environment"] = render_body(issue.environment, api=self.api)
        f["issuetype"] = self.issuetype(state.issue_types[issue.issuetype])
        f["project"] = self.project_short(project)
        f["priority"] = self.priority_short(state.priorities[issue.priority]) if issue.priority else None
        f["status"] = self.status(state.statuses[issue.status])
        f["resolution"] = self.resolution(issue.resolution) if issue.resolution else None
        f["resolutiondate"] = jira_time(issue.resolutiondate) if issue.resolutiondate else None
        f["labels"] = list(issue.labels)
        f["components"] = [c for c in (self.component(project, cid) for cid in issue.components) if c]
        f["fixVersions"] = [v for v in (self.version(project, vid) for vid in issue.fix_versions) if v]
        f["versions"] = [v for v in (self.version(project, vid) for vid in issue.versions) if v]
        f["duedate"] = issue.duedate
        f["assignee"] = self.user_key(issue.assignee)
        f["reporter"] = self.user_key(issue.reporter)
        f["creator"] = self.user_key(issue.creator)
        f["created"] = jira_time(issue.created)
        f["updated"] = jira_time(issue.updated)
        f["statuscategorychangedate"] = jira_time(issue.status_changed)
        if only is not None and not only & {"comment", "attachment", *state.custom_fields}:
            return f
        if comments:
            f["comment"] = {
                "comments": [self.comment(issue, c, rendered=rendered) for c in issue.comments],
                "self": self.rest(f"issue/{issue.id}/comment"),
                "maxResults": len(issue.comments),
                "total": len(issue.comments),
                "startAt": 0,
            }
        f["attachment"] = [
            self.attachment(state.attachments[a]) for a in issue.attachments if a in state.attachments
        ]
        f["watches"] = {
            "self": self.rest(f"issue/{issue.key}/watchers"),
            "watchCount": len(issue.watchers),
            "isWatching": False,
        }
        f["votes"] = {"self": self.rest(f"issue/{issue.key}/votes"), "votes": 0, "hasVoted": False}
        f["issuelinks"] = []
        f["subtasks"] = []
        # Time tracking and security are not modelled; Jira still sends the keys (see the recordings).
        f["lastViewed"] = None
        f["security"] = None
        f["timetracking"] = {}
        f["workratio"] = -1
        for key in (
            "timeestimate",
            "timeoriginalestimate",
            "timespent",
            "aggregatetimeestimate",
            "aggregatetimeoriginalestimate",
            "aggregatetimespent",
        ):
            f[key] = None
        f["progress"] = {"progress": 0, "total": 0}
        f["aggregateprogress"] = {"progress": 0, "total": 0}
        for fid, field in state.custom_fields.items():
            value = issue.custom.get(fid)
            if rendered and field.kind == "textarea":
                f[fid] = to_html(value) if value is not None else None
            else:
                f[fid] = self.custom_value(field, value)
        return f

    def issue(
        self,
        issue: Issue,
        *,
        fields: list[str] | None = None,
        expand: set[str] | None = None,
        properties: list[str] | None = None,
    ) -> dict[str, Any]:
        expand = expand or set()
        selected = select_fields(self.all_field_values(issue, only=explicit_fields(fields)), fields)
        out: dict[str, Any] = {
            "expand": "renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations",
            "id": issue.id,
            "self": self.rest(f"issue/{issue.id}"),
            "key": issue.key,
            "fields": selected,
        }
        if "renderedFields" in expand:
            rendered = self.all_field_values(issue, rendered=True)
            out["renderedFields"] = {k: rendered[k] for k in selected if k in rendered}
        if "names" in expand:
            names = {fid: meta[0] for fid, meta in SYSTEM_FIELDS.items()}
            names.update(self.state.field_names())
            out["names"] = {k: names[k] for k in selected if k in names}
        if "schema" in expand:
            schemas: dict[str, Any] = {fid: m[1] for fid, m in SYSTEM_FIELDS.items() if m[1] is not None}
            schemas.update({f.id: self.custom_schema(f) for f in self.state.custom_fields.values()})
            out["schema"] = {k: schemas[k] for k in selected if k in schemas}
        if "changelog" in expand:
            out["changelog"] = {
                "startAt": 0,
                "maxResults": len(issue.histories),
                "total": len(issue.histories),
                "histories": [self.history(h) for h in issue.histories],
            }
        if "transitions" in expand:
            out["transitions"] = self.transitions(issue, with_fields="transitions.fields" in expand)
        if "editmeta" in expand:
            out["editmeta"] = {"fields": self.meta_fields(self.state.projects[issue.project], create=False)}
        if properties:
            wanted = set(issue.properties) if "*all" in properties else set(properties)
            out["properties"] = {k: v for k, v in issue.properties.items() if k in wanted}
        return out

    def transitions(self, issue: Issue, *, with_fields: bool = False) -> list[dict[str, Any]]:
        workflow = self.state.workflow_of(issue)
        out = []
        for tr in workflow.transitions:
            if tr.sources and issue.status not in tr.sources:
                continue
            row: dict[str, Any] = {
                "id": tr.id,
                "name": tr.name,
                "to": self.status(self.state.statuses[tr.to]),
                "hasScreen": False,
                "isGlobal": not tr.sources,
                "isInitial": False,
                "isAvailable": True,
                "isConditional": False,
                "isLooped": False,
            }
            if with_fields:
                fields: dict[str, Any] = {}
                if self.state.statuses[tr.to].category == "done":
                    meta = self.field_meta("resolution", self.state.projects[issue.project], create=False)
                    if meta is not None:
                        fields["resolution"] = meta
                row["fields"] = fields
            out.append(row)
        return out

    def webhook_issue(self, issue: Issue) -> dict[str, Any]:
        return {
            "id": issue.id,
            "self": self.rest(f"issue/{issue.id}"),
            "key": issue.key,
            "fields": self.all_field_values(issue, comments=False),
        }

    def webhook_issue_short(self, issue: Issue) -> dict[str, Any]:
        """The cut-down issue in comment events (see the comment_* recordings)."""
        keep = ("summary", "issuetype", "project", "assignee", "priority", "status")
        full = self.all_field_values(issue, only=set(keep))  # comments and bodies are not rendered
        return {
            "id": issue.id,
            "self": self.rest(f"issue/{issue.id}"),
            "key": issue.key,
            "fields": {k: full[k] for k in keep},
        }


def explicit_fields(fields: list[str] | None) -> set[str] | None:
    """The field ids a ``fields`` parameter names, or None when it asks for all/navigable ones."""
    if not fields:
        return None
    names = {n.strip() for raw in fields for n in raw.split(",") if n.strip()}
    if "*all" in names or "*navigable" in names:
        return None
    return {n for n in names if not n.startswith("-")}


def select_fields(values: dict[str, Any], fields: list[str] | None) -> dict[str, Any]:
    """Apply Jira's ``fields`` parameter: ``*all``, ``*navigable``, ``*none``, ids and ``-id`` exclusions."""
    if not fields:
        return values
    include: set[str] = set()
    exclude: set[str] = set()
    everything = False
    for raw in fields:
        for name in raw.split(","):
            name = name.strip()
            if not name:
                continue
            if name == "*all":
                everything = True
            elif name == "*navigable":
                include.update(k for k in values if k not in NAVIGABLE_EXCLUDED)
            elif name == "*none":
                continue
            elif name.startswith("-"):
                exclude.add(name[1:])
            else:
                include.add(name)
    keys = set(values) if everything else include
    return {k: v for k, v in values.items() if k in keys and k not in exclude}


def wiki(doc: Any) -> str | None:
    return to_wiki(doc)
