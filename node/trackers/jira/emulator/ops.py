"""What a Jira site does when asked to change something: validate input the way Jira does, apply it
to :class:`~.state.EmulatorState`, record history, and report each change to an event sink (webhooks).

All entry points raise :class:`JiraApiError` for bad input, carrying Jira's error body shape
(``errorMessages`` + ``errors`` by field). No HTTP here.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from protocol.richtext import Doc

from .state import (
    AttachmentRecord,
    Comment,
    CustomField,
    EmulatorState,
    History,
    HistoryItem,
    Issue,
    Project,
    User,
    now,
)
from .text import TextError, read_body, to_wiki

NOT_FOUND = "Issue does not exist or you do not have permission to see it."
CANNOT_SET = "Field '{0}' cannot be set. It is not on the appropriate screen, or unknown."
MULTI = {"labels", "components", "fixVersions", "versions"}


class JiraApiError(Exception):
    def __init__(
        self, status: int, messages: list[str] | None = None, errors: dict[str, str] | None = None
    ) -> None:
        super().__init__(" ".join(messages or []) or str(errors))
        self.status = status
        self.messages = list(messages or [])
        self.errors = dict(errors or {})

    def body(self) -> dict[str, Any]:
        return {"errorMessages": self.messages, "errors": self.errors}


@dataclass
class Event:
    """One change, reported to the sink while the issue is still in the state (even on delete)."""

    webhook_event: str  # jira:issue_created, comment_updated, ...
    issue: Issue
    actor: User
    issue_event_type: str | None = None
    history: History | None = None
    comment: Comment | None = None
    at: dt.datetime = field(default_factory=now)


EventSink = Callable[[Event], None]


class _FieldErrors:
    def __init__(self) -> None:
        self.errors: dict[str, str] = {}

    def add(self, fid: str, message: str) -> None:
        self.errors.setdefault(fid, message)

    def raise_if_any(self) -> None:
        if self.errors:
            raise JiraApiError(400, [], self.errors)


class Site:
    """The rules of one emulated Jira site, over its state."""

    def __init__(self, state: EmulatorState, sink: EventSink | None = None) -> None:
        self.state = state
        self.sink = sink
        # False: behave like the Jira versions that ignore ``properties`` in ``POST /issue``
        self.keep_create_properties = True

    @property
    def cloud(self) -> bool:
        return self.state.mode == "cloud"

    def _emit(self, event: Event) -> None:
        if self.sink is not None:
            self.sink(event)

    # ------------------------------------------------------------------ lookups

    def get_issue(self, id_or_key: str) -> Issue:
        issue = self.state.issue(id_or_key)
        if issue is None:
            raise JiraApiError(404, [NOT_FOUND])
        return issue

    def get_comment(self, issue: Issue, comment_id: str) -> Comment:
        for comment in issue.comments:
            if comment.id == comment_id:
                return comment
        raise JiraApiError(404, [f"Can not find a comment for the id: {comment_id}."])

    def find_comment(self, comment_id: str) -> tuple[Issue, Comment]:
        for issue in self.state.issues.values():
            for comment in issue.comments:
                if comment.id == comment_id:
                    return issue, comment
        raise JiraApiError(404, [f"Can not find a comment for the id: {comment_id}."])

    def resolve_user(self, value: Any, fid: str, errors: _FieldErrors) -> tuple[bool, str | None]:
        """A user as a client names it: ``{"accountId"}`` on Cloud, ``{"name"}``/``{"key"}`` on Server.
        Returns (ok, user key or None for "nobody")."""
        if value is None:
            return True, None
        if not isinstance(value, dict):
            errors.add(fid, f"Specify a valid value for {fid}" if self.cloud else "expected Object")
            return False, None
        if self.cloud:
            if "accountId" not in value and ("name" in value or "key" in value):
                errors.add(
                    fid, "'accountId' must be the only user identifying query parameter in GDPR strict mode."
                )
                return False, None
            account_id = value.get("accountId", value.get("id"))
            if account_id is None or account_id == "-1":
                return True, None
            user = self.state.find_user(account_id=str(account_id))
            shown = account_id
        else:
            name = value.get("name")
            if name is None and "key" in value:
                user = self.state.find_user(key=str(value["key"])) if value["key"] is not None else None
                shown = value["key"]
                if value["key"] is None:
                    return True, None
            elif name is None or name == "-1":
                return True, None
            else:
                user = self.state.find_user(name=str(name))
                shown = name
        if user is None or not user.active:
            errors.add(fid, f"User '{shown}' does not exist.")
            return False, None
        return True, user.key

    # ------------------------------------------------------------------ field parsing

    def _named(
        self, value: Any, pool: dict[str, str], fid: str, label: str, errors: _FieldErrors
    ) -> str | None:
        """A reference by ``{"id"}`` or ``{"name"}`` into ``pool`` (id -> name)."""
        if not isinstance(value, dict):
            errors.add(fid, f"Specify the {label} (id or name) in the object format")
            return None
        if value.get("id") is not None:
            vid = str(value["id"])
            if vid in pool:
                return vid
            errors.add(fid, f"{label.capitalize()} id '{vid}' is not valid")
            return None
        if value.get("name") is not None:
            for pid, pname in pool.items():
                if pname.lower() == str(value["name"]).lower():
                    return pid
            errors.add(fid, f"{label.capitalize()} name '{value['name']}' is not valid")
            return None
        errors.add(fid, f"Specify the {label} (id or name) in the object format")
        return None

    def _option(self, cf: CustomField, value: Any, errors: _FieldErrors) -> str | None:
        if not isinstance(value, dict):
            errors.add(cf.id, "Specify a valid 'id' or 'name' for " + cf.name)
            return None
        for opt in cf.options:
            if ("id" in value and str(value["id"]) == opt.id) or (
                "value" in value and value["value"] == opt.value
            ):
                return opt.id
        shown = value.get("value", value.get("id"))
        errors.add(cf.id, f"Option value '{shown}' is not valid")
        return None

    def parse_value(
        self, fid: str, value: Any, project: Project, api: int, errors: _FieldErrors
    ) -> tuple[bool, Any]:
        """One field value as sent by a client -> the internal value. (False, None) on error."""
        state = self.state
        try:
            if fid == "summary":
                if not isinstance(value, str) or not value.strip():
                    errors.add(fid, "You must specify a summary of the issue.")
                    return False, None
                if len(value) > 255:
                    errors.add(fid, "Summary must be less than 255 characters.")
                    return False, None
                if "\n" in value or "\r" in value:
                    errors.add(fid, "The summary is invalid because it contains newline characters.")
                    return False, None
                return True, value
            if fid in ("description", "environment"):
                if value is None or value == "":
                    return True, None
                return True, read_body(value, api=api)
        except TextError as err:
            errors.add(fid, str(err))
            return False, None
        if fid == "issuetype":
            pool = {t: state.issue_types[t].name for t in project.issue_types}
            if isinstance(value, dict) and not value.get("id") and not value.get("name"):
                errors.add(fid, "Specify an issue type")
                return False, None
            tid = self._named(value, pool, fid, "issue type", errors)
            if tid is None:
                errors.errors[fid] = "The issue type selected is invalid."
            return tid is not None, tid
        if fid in ("priority", "resolution"):
            if value is None:
                return True, None
            rows = state.priorities if fid == "priority" else state.resolutions
            ref = self._named(value, {r.id: r.name for r in rows.values()}, fid, fid, errors)
            return ref is not None, ref
        if fid in ("assignee", "reporter"):
            ok, key = self.resolve_user(value, fid, errors)
            return ok, key
        if fid == "duedate":
            if value is None or value == "":
                return True, None
            try:
                return True, dt.date.fromisoformat(str(value)).isoformat()
            except ValueError:
                errors.add(fid, f"Error parsing date string: {value}")
                return False, None
        if fid == "labels":
            if value is None:
                return True, []
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                errors.add(fid, "data was not an array")
                return False, None
            for label in value:
                if " " in label or not label:
                    errors.add(fid, f"The label '{label}' contains spaces which is invalid.")
                    return False, None
                if len(label) > 255:
                    errors.add(fid, "The label exceeds the maximum length of 255 characters.")
                    return False, None
            return True, list(dict.fromkeys(value))
        if fid in ("components", "fixVersions", "versions"):
            if value is None:
                return True, []
            if not isinstance(value, list):
                errors.add(fid, "data was not an array")
                return False, None
            if fid == "components":
                pool = {c.id: c.name for c in project.components}
                label = "component"
            else:
                pool = {v.id: v.name for v in project.versions}
                label = "version"
            ids: list[str] = []
            for item in value:
                ref = self._named(item, pool, fid, label, errors)
                if ref is None:
                    return False, None
                if ref not in ids:
                    ids.append(ref)
            return True, ids
        cf = state.custom_fields.get(fid)
        if cf is None:
            errors.add(fid, CANNOT_SET.format(fid))
            return False, None
        return self._parse_custom(cf, value, api, errors)

    def _parse_custom(self, cf: CustomField, value: Any, api: int, errors: _FieldErrors) -> tuple[bool, Any]:
        if value is None:
            return True, None
        kind = cf.kind
        if kind in ("text", "url"):
            if not isinstance(value, str):
                errors.add(cf.id, "Operation value must be a string")
                return False, None
            if len(value) > 255:
                errors.add(
                    cf.id, "The entered text is too long. It exceeds the allowed limit of 255 characters."
                )
                return False, None
            return True, value or None
        if kind == "textarea":
            try:
                return True, read_body(value, api=api)
            except TextError as err:
                errors.add(cf.id, str(err))
                return False, None
        if kind == "number":
            if isinstance(value, bool) or not isinstance(value, int | float):
                errors.add(cf.id, "Operation value must be a number")
                return False, None
            return True, value
        if kind == "date":
            try:
                return True, dt.date.fromisoformat(str(value)).isoformat()
            except ValueError:
                errors.add(cf.id, f"Error parsing date string: {value}")
                return False, None
        if kind == "select":
            oid = self._option(cf, value, errors)
            return oid is not None, oid
        if kind == "multiselect":
            if not isinstance(value, list):
                errors.add(cf.id, "data was not an array")
                return False, None
            out: list[str] = []
            for item in value:
                oid = self._option(cf, item, errors)
                if oid is None:
                    return False, None
                out.append(oid)
            return True, out
        if kind == "user":
            return self.resolve_user(value, cf.id, errors)
        if kind == "labels":
            if not isinstance(value, list) or not all(isinstance(v, str) and " " not in v for v in value):
                errors.add(cf.id, "data was not an array")
                return False, None
            return True, list(value)
        errors.add(cf.id, CANNOT_SET.format(cf.id))  # pragma: no cover - every kind handled above
        return False, None

    # ------------------------------------------------------------------ reading/writing internal values

    _ATTR = {
        "summary": "summary",
        "description": "description",
        "environment": "environment",
        "issuetype": "issuetype",
        "priority": "priority",
        "resolution": "resolution",
        "assignee": "assignee",
        "reporter": "reporter",
        "duedate": "duedate",
        "labels": "labels",
        "components": "components",
        "fixVersions": "fix_versions",
        "versions": "versions",
    }

    def _get(self, issue: Issue, fid: str) -> Any:
        if fid in self._ATTR:
            return getattr(issue, self._ATTR[fid])
        return issue.custom.get(fid)

    def _set(self, issue: Issue, fid: str, value: Any) -> None:
        if fid in self._ATTR:
            setattr(issue, self._ATTR[fid], value)
        else:
            issue.custom[fid] = value

    # ------------------------------------------------------------------ history

    def _user_item(self, key: str | None) -> tuple[str | None, str | None]:
        user = self.state.users.get(key) if key else None
        if user is None:
            return None, None
        return (user.account_id if self.cloud else user.name), user.display_name

    def _display(self, issue: Issue, fid: str, value: Any) -> tuple[str | None, str | None]:
        """(id, display string) of a single value, as Jira writes it into history."""
        state = self.state
        if value is None:
            return None, None
        if fid in ("summary",):
            return None, str(value)
        if fid in ("description", "environment"):
            return None, to_wiki(value)
        if fid == "issuetype":
            return value, state.issue_types[value].name
        if fid == "priority":
            return value, state.priorities[value].name
        if fid == "resolution":
            return value, state.resolutions[value].name
        if fid == "status":
            return value, state.statuses[value].name
        if fid in ("assignee", "reporter"):
            return self._user_item(value)
        if fid == "duedate":
            return value, f"{value} 00:00:00.0"
        if fid == "labels":
            return None, " ".join(value)
        cf = state.custom_fields.get(fid)
        if cf is None:
            return None, str(value)
        if cf.kind == "select":
            return value, state.custom_display(cf, value)
        if cf.kind == "multiselect":
            return "[" + ", ".join(value) + "]", ",".join(state.custom_display(cf, value))
        if cf.kind == "user":
            return self._user_item(value)
        if cf.kind == "textarea":
            return None, to_wiki(value)
        if cf.kind == "number":
            return None, str(value)
        return None, str(value)

    def _history_items(self, issue: Issue, fid: str, old: Any, new: Any) -> list[HistoryItem]:
        state = self.state
        if old == new:
            return []
        if fid in ("components", "fixVersions", "versions"):
            project = state.projects[issue.project]
            names = {c.id: c.name for c in project.components} | {v.id: v.name for v in project.versions}
            label = {"components": "Component", "fixVersions": "Fix Version", "versions": "Version"}[fid]
            items = [
                HistoryItem(field=label, field_id=fid, from_=v, from_string=names.get(v))
                for v in old
                if v not in new
            ]
            items += [
                HistoryItem(field=label, field_id=fid, to=v, to_string=names.get(v))
                for v in new
                if v not in old
            ]
            return items
        cf = state.custom_fields.get(fid)
        f_id, f_str = self._display(issue, fid, old)
        t_id, t_str = self._display(issue, fid, new)
        name = {"issuetype": "issuetype", "status": "status"}.get(fid, fid)
        return [
            HistoryItem(
                field=cf.name if cf else name,
                fieldtype="custom" if cf else "jira",
                field_id=fid,
                from_=f_id,
                from_string=f_str,
                to=t_id,
                to_string=t_str,
            )
        ]

    def _record(self, issue: Issue, actor: User, items: list[HistoryItem], at: dt.datetime) -> History | None:
        if not items:
            return None
        history = History(id=self.state.next_id("history"), author=actor.key, created=at, items=items)
        issue.histories.append(history)
        issue.updated = at
        return history

    # ------------------------------------------------------------------ issues

    def create_issue(self, actor: User, body: Any, api: int) -> Issue:
        if not isinstance(body, dict):
            raise JiraApiError(400, ["Can not deserialize instance of IssueBean out of the request body."])
        fields = body.get("fields")
        update = body.get("update") or {}
        if not isinstance(fields, dict):
            raise JiraApiError(
                400, [], {"project": "project is required", "issuetype": "issue type is required"}
            )
        errors = _FieldErrors()
        project_ref = fields.get("project")
        project = None
        if isinstance(project_ref, dict):
            ref = project_ref.get("key") or project_ref.get("id")
            project = self.state.project_by_id_or_key(str(ref)) if ref is not None else None
            if project is None:
                errors.add("project", "Specify a valid project ID or key")
        else:
            errors.add("project", "project is required")
        if "issuetype" not in fields:
            errors.add("issuetype", "Specify an issue type")
        if "summary" not in fields and "summary" not in update:
            errors.add("summary", "You must specify a summary of the issue.")
        if project is None:
            errors.raise_if_any()
            raise JiraApiError(400, [], {"project": "Specify a valid project ID or key"})
        allowed = set(SETTABLE_ON_CREATE) | set(self.state.custom_fields)
        values: dict[str, Any] = {}
        for fid, raw in fields.items():
            if fid == "project":
                continue
            if fid not in allowed:
                errors.add(fid, CANNOT_SET.format(fid))
                continue
            ok, value = self.parse_value(fid, raw, project, api, errors)
            if ok:
                values[fid] = value
        if not isinstance(update, dict):
            errors.add("update", "update must be an object")
            update = {}
        comments_to_add: list[Any] = []
        for fid, ops in update.items():
            if fid == "comment":
                comments_to_add.extend(
                    op["add"] for op in ops if isinstance(op, dict) and isinstance(op.get("add"), dict)
                )
                continue
            if fid not in allowed:
                errors.add(fid, CANNOT_SET.format(fid))
                continue
            current = values.get(fid, [] if fid in MULTI else None)
            values[fid] = self._apply_ops(fid, current, ops, project, api, errors)
        # Entity properties set in the create request (IssueUpdateDetails.properties), as on Jira
        properties = self._entity_properties(body.get("properties"))
        errors.raise_if_any()
        at = now()
        number = project.next_number
        project.next_number += 1
        workflow = self.state.workflows[project.workflow]
        issue = Issue(
            id=self.state.next_id("issue"),
            key=f"{project.key}-{number}",
            project=project.key,
            issuetype=values.pop("issuetype"),
            summary=values.pop("summary"),
            status=workflow.initial,
            priority="3",
            reporter=actor.key,
            creator=actor.key,
            created=at,
            updated=at,
            status_changed=at,
        )
        if self.keep_create_properties:
            issue.properties.update(properties)
        for fid, value in values.items():
            self._set(issue, fid, value)
        self.state.issues[issue.id] = issue
        self.state.keys[issue.key] = issue.id
        items: list[HistoryItem] = []
        for fid in ("assignee", "reporter", "priority", "summary", "description", "labels", "duedate"):
            if self._get(issue, fid):
                items += self._history_items(issue, fid, None, self._get(issue, fid))
        items += self._history_items(issue, "status", None, issue.status)
        for fid in values:
            if fid in self.state.custom_fields:
                items += self._history_items(issue, fid, None, values[fid])
        history = History(id=self.state.next_id("history"), author=actor.key, created=at, items=items)
        # Jira keeps no history entry for creation, but the created webhook carries this changelog.
        self._emit(Event("jira:issue_created", issue, actor, "issue_created", history=history, at=at))
        for spec in comments_to_add:
            self.add_comment(actor, issue, spec, api)
        return issue

    def _apply_ops(
        self, fid: str, current: Any, ops: Any, project: Project, api: int, errors: _FieldErrors
    ) -> Any:
        if not isinstance(ops, list):
            errors.add(fid, "Operation must be a list of operations")
            return current
        value = list(current) if isinstance(current, list) else current
        for op in ops:
            if not isinstance(op, dict) or len(op) != 1:
                errors.add(fid, "Each operation must be an object with one verb: set, add, remove or edit")
                return current
            verb, arg = next(iter(op.items()))
            multi = fid in MULTI or (
                fid in self.state.custom_fields
                and self.state.custom_fields[fid].kind in ("multiselect", "labels")
            )
            if verb == "set":
                ok, parsed = self.parse_value(fid, arg, project, api, errors)
                if ok:
                    value = parsed
            elif verb in ("add", "remove") and multi:
                ok, parsed = self.parse_value(fid, [arg], project, api, errors)
                if not ok:
                    continue
                value = list(value or [])
                for item in parsed:
                    if verb == "add" and item not in value:
                        value.append(item)
                    elif verb == "remove" and item in value:
                        value.remove(item)
            elif verb == "edit" and fid not in MULTI:
                ok, parsed = self.parse_value(fid, arg, project, api, errors)
                if ok:
                    value = parsed
            else:
                errors.add(fid, f"Field '{fid}' does not support operation '{verb}'")
        return value

    def edit_issue(
        self, actor: User, issue: Issue, body: Any, api: int, *, event: str = "issue_updated"
    ) -> None:
        if not isinstance(body, dict):
            raise JiraApiError(
                400, ["Can not deserialize instance of IssueUpdateBean out of the request body."]
            )
        fields = body.get("fields") or {}
        update = body.get("update") or {}
        if not isinstance(fields, dict) or not isinstance(update, dict):
            raise JiraApiError(400, ["fields and update must be objects"])
        project = self.state.projects[issue.project]
        errors = _FieldErrors()
        allowed = set(SETTABLE_ON_EDIT) | set(self.state.custom_fields)
        new: dict[str, Any] = {}
        for fid in set(fields) & set(update):
            errors.add(fid, f"Field '{fid}' cannot be set with both 'fields' and 'update'")
        for fid, raw in fields.items():
            if fid not in allowed:
                errors.add(fid, CANNOT_SET.format(fid))
                continue
            if fid == "summary" and raw is None:
                errors.add(fid, "You must specify a summary of the issue.")
                continue
            ok, value = self.parse_value(fid, raw, project, api, errors)
            if ok:
                new[fid] = value
        comment_ops: list[tuple[str, Any]] = []
        for fid, ops in update.items():
            if fid == "comment":
                if not isinstance(ops, list):
                    errors.add(fid, "Operation must be a list of operations")
                    continue
                for op in ops:
                    if isinstance(op, dict) and len(op) == 1:
                        comment_ops.append(next(iter(op.items())))
                    else:
                        errors.add(
                            fid, "Each operation must be an object with one verb: set, add, remove or edit"
                        )
                continue
            if fid not in allowed:
                errors.add(fid, CANNOT_SET.format(fid))
                continue
            new[fid] = self._apply_ops(fid, self._get(issue, fid), ops, project, api, errors)
        if "summary" in new and not new["summary"]:
            errors.add("summary", "You must specify a summary of the issue.")
        if "issuetype" in new and new["issuetype"] is None:
            errors.add("issuetype", "Specify an issue type")
        errors.raise_if_any()
        at = now()
        items: list[HistoryItem] = []
        for fid, value in new.items():
            old = self._get(issue, fid)
            items += self._history_items(issue, fid, old, value)
            self._set(issue, fid, value)
        history = self._record(issue, actor, items, at)
        if history is not None:
            self._emit(Event("jira:issue_updated", issue, actor, event, history=history, at=at))
        for verb, arg in comment_ops:
            if verb == "add" and isinstance(arg, dict):
                self.add_comment(actor, issue, arg, api)
            elif verb == "edit" and isinstance(arg, dict):
                self.update_comment(actor, issue, self.get_comment(issue, str(arg.get("id"))), arg, api)
            elif verb == "remove" and isinstance(arg, dict):
                self.delete_comment(actor, issue, self.get_comment(issue, str(arg.get("id"))))

    def delete_issue(self, actor: User, issue: Issue) -> None:
        self._emit(Event("jira:issue_deleted", issue, actor, "issue_deleted"))
        del self.state.issues[issue.id]
        for key in [k for k, v in self.state.keys.items() if v == issue.id]:
            del self.state.keys[key]
        for aid in issue.attachments:
            self.state.attachments.pop(aid, None)

    # ------------------------------------------------------------------ workflow

    def do_transition(self, actor: User, issue: Issue, body: Any, api: int) -> None:
        if not isinstance(body, dict) or not isinstance(body.get("transition"), dict):
            raise JiraApiError(400, ["Missing 'transition' identifier"])
        ref = body["transition"]
        tid = ref.get("id")
        workflow = self.state.workflow_of(issue)
        available = [t for t in workflow.transitions if not t.sources or issue.status in t.sources]
        if tid is None and ref.get("name"):
            chosen = next((t for t in available if t.name.lower() == str(ref["name"]).lower()), None)
            shown = ref["name"]
        else:
            chosen = next((t for t in available if t.id == str(tid)), None)
            shown = tid
        if chosen is None:
            raise JiraApiError(400, [f"Transition id '{shown}' is not valid for this issue."])
        fields = dict(body.get("fields") or {})
        target = self.state.statuses[chosen.to]
        errors = _FieldErrors()
        resolution: str | None = None
        if "resolution" in fields:
            raw = fields.pop("resolution")
            _, resolution = self.parse_value(
                "resolution", raw, self.state.projects[issue.project], api, errors
            )
            errors.raise_if_any()
        at = now()
        items = self._history_items(issue, "status", issue.status, chosen.to)
        if issue.status != chosen.to and self.state.statuses[issue.status].category != target.category:
            issue.status_changed = at
        issue.status = chosen.to
        new_resolution = issue.resolution
        if target.category == "done":
            new_resolution = resolution or issue.resolution or "10000"
            if issue.resolutiondate is None or issue.resolution is None:
                issue.resolutiondate = at
        else:
            new_resolution = None
            issue.resolutiondate = None
        items = self._history_items(issue, "resolution", issue.resolution, new_resolution) + items
        issue.resolution = new_resolution
        history = self._record(issue, actor, items, at)
        if history is not None:
            self._emit(Event("jira:issue_updated", issue, actor, "issue_generic", history=history, at=at))
        if fields or body.get("update"):
            self.edit_issue(actor, issue, {"fields": fields, "update": body.get("update") or {}}, api)

    def assign(self, actor: User, issue: Issue, body: Any) -> None:
        errors = _FieldErrors()
        _, key = self.resolve_user(body, "assignee", errors)
        errors.raise_if_any()
        items = self._history_items(issue, "assignee", issue.assignee, key)
        issue.assignee = key
        history = self._record(issue, actor, items, now())
        if history is not None:
            self._emit(Event("jira:issue_updated", issue, actor, "issue_assigned", history=history))

    # ------------------------------------------------------------------ comments

    def _comment_fields(self, body: Any, api: int) -> tuple[Doc, dict[str, str] | None, dict[str, Any]]:
        if not isinstance(body, dict):
            raise JiraApiError(400, ["Can not deserialize instance of Comment out of the request body."])
        if "body" not in body or body["body"] in (None, ""):
            raise JiraApiError(400, [], {"comment": "Comment body can not be empty!"})
        try:
            doc = read_body(body["body"], api=api)
        except TextError as err:
            raise JiraApiError(400, [], {"comment": str(err)}) from err
        visibility = body.get("visibility")
        if visibility is not None:
            if (
                not isinstance(visibility, dict)
                or visibility.get("type") not in ("group", "role")
                or not isinstance(visibility.get("value") or visibility.get("identifier"), str)
            ):
                raise JiraApiError(
                    400, [], {"commentLevel": "You are currently not a member of the project role."}
                )
            value = str(visibility.get("value") or visibility.get("identifier"))
            if visibility["type"] == "group" and value not in self.state.groups:
                raise JiraApiError(400, [], {"commentLevel": f"Group: '{value}' does not exist."})
            visibility = {"type": visibility["type"], "value": value}
        return doc, visibility, self._entity_properties(body.get("properties"))

    @staticmethod
    def _entity_properties(raw: Any) -> dict[str, Any]:
        """``[{key, value}, ...]`` of a create request → ``{key: value}``."""
        props: dict[str, Any] = {}
        if not isinstance(raw or [], list):
            raise JiraApiError(400, ["properties must be a list of {key, value}"])
        for prop in raw or []:
            if not isinstance(prop, dict) or not isinstance(prop.get("key"), str):
                raise JiraApiError(400, ["Each property needs a string 'key'"])
            props[prop["key"]] = prop.get("value")
        return props

    def add_comment(self, actor: User, issue: Issue, body: Any, api: int) -> Comment:
        doc, visibility, props = self._comment_fields(body, api)
        at = now()
        comment = Comment(
            id=self.state.next_id("comment"),
            author=actor.key,
            update_author=actor.key,
            body=doc,
            created=at,
            updated=at,
            visibility=visibility,
            properties=props,
        )
        issue.comments.append(comment)
        issue.updated = at
        self._emit(Event("comment_created", issue, actor, comment=comment, at=at))
        self._emit(Event("jira:issue_updated", issue, actor, "issue_commented", comment=comment, at=at))
        return comment

    def update_comment(self, actor: User, issue: Issue, comment: Comment, body: Any, api: int) -> Comment:
        doc, visibility, props = self._comment_fields(body, api)
        at = now()
        comment.body = doc
        if isinstance(body, dict) and "visibility" in body:
            comment.visibility = visibility
        comment.properties.update(props)
        comment.update_author = actor.key
        comment.updated = at
        issue.updated = at
        self._emit(Event("comment_updated", issue, actor, comment=comment, at=at))
        self._emit(Event("jira:issue_updated", issue, actor, "issue_comment_edited", comment=comment, at=at))
        return comment

    def delete_comment(self, actor: User, issue: Issue, comment: Comment) -> None:
        issue.comments.remove(comment)
        issue.updated = now()
        self._emit(Event("comment_deleted", issue, actor, comment=comment))
        self._emit(Event("jira:issue_updated", issue, actor, "issue_comment_deleted", comment=comment))

    # ------------------------------------------------------------------ attachments

    def add_attachment(
        self, actor: User, issue: Issue, filename: str, content: bytes, mime: str
    ) -> AttachmentRecord:
        at = now()
        rec = AttachmentRecord(
            id=self.state.next_id("attachment"),
            issue_id=issue.id,
            filename=filename,
            author=actor.key,
            created=at,
            mime_type=mime,
            content=content,
        )
        self.state.attachments[rec.id] = rec
        issue.attachments.append(rec.id)
        items = [HistoryItem(field="Attachment", field_id="attachment", to=rec.id, to_string=filename)]
        history = self._record(issue, actor, items, at)
        self._emit(Event("jira:issue_updated", issue, actor, "issue_updated", history=history, at=at))
        return rec

    def delete_attachment(self, actor: User, rec: AttachmentRecord) -> None:
        issue = self.state.issues.get(rec.issue_id)
        del self.state.attachments[rec.id]
        if issue is None:
            return
        if rec.id in issue.attachments:
            issue.attachments.remove(rec.id)
        items = [
            HistoryItem(field="Attachment", field_id="attachment", from_=rec.id, from_string=rec.filename)
        ]
        history = self._record(issue, actor, items, now())
        self._emit(Event("jira:issue_updated", issue, actor, "issue_updated", history=history))


SETTABLE_ON_CREATE = (  # in the order create/edit metadata list them (views.View.CREATE_FIELDS)
    "summary",
    "issuetype",
    "description",
    "priority",
    "labels",
    "components",
    "fixVersions",
    "versions",
    "duedate",
    "assignee",
    "reporter",
    "environment",
)
SETTABLE_ON_EDIT = (*SETTABLE_ON_CREATE, "resolution")

_PROPERTY_KEY = re.compile(r"^[^\s]{1,255}$")


def check_property_key(key: str) -> None:
    if not _PROPERTY_KEY.match(key):
        raise JiraApiError(400, ["The property key must be between 1 and 255 characters long."])
