"""The emulator's in-memory model of one Jira site, and its JSON persistence.

Everything a client can observe lives in :class:`EmulatorState`: users and groups, projects with their
components, versions and workflow, statuses, custom fields, issues with comments, attachments,
properties, remote links and history, and webhook registrations. Tests use the helper methods
(``add_user``, ``add_project``, ``add_custom_field``, ``add_workflow``, ``assign_workflow``) to set a site
up directly. No HTTP here; :mod:`.server` renders this model in Jira's REST shapes.

Ids are strings of increasing integers, as Jira's are; issue keys are ``PROJECT-n``.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from node.trackers.base import ChangeItem, IssueSnapshot
from protocol.replica import Attachment as NeutralAttachment
from protocol.replica import Comment as NeutralComment
from protocol.replica import StatusRef, UserRef
from protocol.richtext import Doc

Mode = Literal["cloud", "server"]
StatusCategoryKey = Literal["new", "indeterminate", "done"]
CustomKind = Literal["text", "textarea", "number", "select", "multiselect", "user", "date", "url", "labels"]

STATE_FORMAT = 1


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@functools.lru_cache(maxsize=16384)
def jira_time(value: dt.datetime) -> str:
    """Jira's timestamp format: ``2024-01-31T10:00:00.000+0000`` (cached: every read and webhook
    renders the same stored times again)."""
    value = value.astimezone(dt.UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}+0000"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", ser_json_bytes="base64", val_json_bytes="base64")


class User(_Model):
    key: str  # Server's user key; the internal reference used everywhere in this model
    name: str  # Server's username (login)
    account_id: str
    display_name: str
    email: str
    password: str
    active: bool = True
    time_zone: str = "UTC"
    groups: list[str] = Field(default_factory=list)


class Group(_Model):
    name: str
    group_id: str


class Status(_Model):
    id: str
    name: str
    category: StatusCategoryKey
    description: str = ""


class WorkflowTransition(_Model):
    id: str
    name: str
    to: str  # status id
    sources: list[str] = Field(default_factory=list)  # status ids; empty = global (from any status)


class Workflow(_Model):
    name: str
    initial: str  # status id
    statuses: list[str]
    transitions: list[WorkflowTransition]


class Component(_Model):
    id: str
    name: str
    description: str = ""


class Version(_Model):
    id: str
    name: str
    released: bool = False
    archived: bool = False


class Project(_Model):
    id: str
    key: str
    name: str
    lead: str  # user key
    project_type: str = "software"
    workflow: str = "simple"
    issue_types: list[str] = Field(default_factory=lambda: ["10001", "10002", "10004", "10000"])
    components: list[Component] = Field(default_factory=list)
    versions: list[Version] = Field(default_factory=list)
    description: str = ""
    next_number: int = 1


class Option(_Model):
    id: str
    value: str
    disabled: bool = False


class CustomField(_Model):
    id: str  # customfield_NNNNN
    name: str
    kind: CustomKind
    options: list[Option] = Field(default_factory=list)
    description: str = ""


class HistoryItem(_Model):
    field: str
    fieldtype: str = "jira"
    field_id: str
    from_: str | None = None
    from_string: str | None = None
    to: str | None = None
    to_string: str | None = None


class History(_Model):
    id: str
    author: str | None  # user key
    created: dt.datetime
    items: list[HistoryItem]


class Comment(_Model):
    id: str
    author: str
    update_author: str
    body: Doc
    created: dt.datetime
    updated: dt.datetime
    visibility: dict[str, str] | None = None
    properties: dict[str, Any] = Field(default_factory=dict)

    @property
    def internal(self) -> bool:
        prop = self.properties.get("sd.public.comment")
        return bool(isinstance(prop, dict) and prop.get("internal")) or self.visibility is not None


class AttachmentRecord(_Model):
    id: str
    issue_id: str
    filename: str
    author: str
    created: dt.datetime
    mime_type: str
    content: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


class RemoteLink(_Model):
    id: str
    global_id: str | None = None
    relationship: str | None = None
    object: dict[str, Any]


class Issue(_Model):
    id: str
    key: str
    project: str  # project key
    issuetype: str  # issue type id
    summary: str
    description: Doc | None = None
    environment: Doc | None = None
    priority: str | None = None
    status: str
    resolution: str | None = None
    resolutiondate: dt.datetime | None = None
    labels: list[str] = Field(default_factory=list)
    components: list[str] = Field(default_factory=list)  # component ids
    fix_versions: list[str] = Field(default_factory=list)  # version ids
    versions: list[str] = Field(default_factory=list)  # version ids
    duedate: str | None = None
    assignee: str | None = None
    reporter: str | None = None
    creator: str | None = None
    custom: dict[str, Any] = Field(default_factory=dict)
    created: dt.datetime
    updated: dt.datetime
    status_changed: dt.datetime
    comments: list[Comment] = Field(default_factory=list)
    attachments: list[str] = Field(default_factory=list)
    properties: dict[str, Any] = Field(default_factory=dict)
    remote_links: list[RemoteLink] = Field(default_factory=list)
    histories: list[History] = Field(default_factory=list)
    watchers: list[str] = Field(default_factory=list)


class Webhook(_Model):
    id: str
    name: str
    url: str
    events: list[str]
    jql: str | None = None
    exclude_body: bool = False
    enabled: bool = True
    dynamic: bool = False  # registered through /rest/api/3/webhook (Connect/OAuth apps)
    created: dt.datetime
    expires: dt.datetime | None = None
    owner: str | None = None  # user key


class IssueType(_Model):
    id: str
    name: str
    description: str
    subtask: bool = False
    avatar_id: int = 10318


class Priority(_Model):
    id: str
    name: str
    description: str = ""
    color: str = "#ffffff"
    icon: str = "medium"


class Resolution(_Model):
    id: str
    name: str
    description: str = ""


def _default_statuses() -> dict[str, Status]:
    rows: list[tuple[str, str, StatusCategoryKey]] = [
        ("10000", "To Do", "new"),
        ("3", "In Progress", "indeterminate"),
        ("10001", "Done", "done"),
        ("1", "Open", "new"),
        ("10002", "Accepted", "indeterminate"),
        ("10003", "Root Cause Identified", "indeterminate"),
        ("10004", "Workaround Provided", "indeterminate"),
        ("5", "Resolved", "done"),
        ("6", "Closed", "done"),
    ]
    return {sid: Status(id=sid, name=name, category=cat) for sid, name, cat in rows}


def _default_workflows() -> dict[str, Workflow]:
    simple = Workflow(
        name="simple",
        initial="10000",
        statuses=["10000", "3", "10001"],
        transitions=[
            WorkflowTransition(id="11", name="To Do", to="10000"),
            WorkflowTransition(id="21", name="In Progress", to="3"),
            WorkflowTransition(id="31", name="Done", to="10001"),
        ],
    )
    support = Workflow(
        name="support",
        initial="1",
        statuses=["1", "10002", "10003", "10004", "5", "6"],
        transitions=[
            WorkflowTransition(id="11", name="Accept", to="10002", sources=["1"]),
            WorkflowTransition(id="21", name="Root Cause", to="10003", sources=["10002"]),
            WorkflowTransition(id="31", name="Provide Workaround", to="10004", sources=["10003"]),
            WorkflowTransition(id="41", name="Resolve", to="5", sources=["10004"]),
            WorkflowTransition(id="51", name="Close", to="6", sources=["5"]),
            WorkflowTransition(id="61", name="Reopen", to="1", sources=["5", "6"]),
        ],
    )
    return {"simple": simple, "support": support}


def _default_issue_types() -> dict[str, IssueType]:
    rows = [
        ("10000", "Epic", "A big user story that needs to be broken down.", False, 10307),
        ("10001", "Story", "Functionality or a feature expressed as a user goal.", False, 10315),
        ("10002", "Task", "A small, distinct piece of work.", False, 10318),
        ("10003", "Sub-task", "A small piece of work that's part of a larger task.", True, 10316),
        ("10004", "Bug", "A problem or error.", False, 10303),
    ]
    return {tid: IssueType(id=tid, name=n, description=d, subtask=s, avatar_id=a) for tid, n, d, s, a in rows}


def _default_priorities() -> dict[str, Priority]:
    rows = [
        ("1", "Highest", "#d04437", "highest"),
        ("2", "High", "#f15C75", "high"),
        ("3", "Medium", "#f79232", "medium"),
        ("4", "Low", "#707070", "low"),
        ("5", "Lowest", "#999999", "lowest"),
    ]
    return {pid: Priority(id=pid, name=n, color=c, icon=i, description=n) for pid, n, c, i in rows}


def _default_resolutions() -> dict[str, Resolution]:
    rows = [
        ("10000", "Done", "Work has been completed on this issue."),
        ("10001", "Won't Do", "This issue won't be actioned."),
        ("10002", "Duplicate", "The problem is a duplicate of an existing issue."),
        ("10003", "Cannot Reproduce", "This issue couldn't be reproduced."),
    ]
    return {rid: Resolution(id=rid, name=n, description=d) for rid, n, d in rows}


def _default_custom_fields() -> dict[str, CustomField]:
    fields = [
        CustomField(id="customfield_10016", name="Story Points", kind="number"),
        CustomField(id="customfield_10050", name="Customer", kind="text"),
        CustomField(
            id="customfield_10051",
            name="Severity",
            kind="select",
            options=[Option(id=str(10100 + i), value=v) for i, v in enumerate(["S1", "S2", "S3", "S4"])],
        ),
        CustomField(
            id="customfield_10052",
            name="Platforms",
            kind="multiselect",
            options=[Option(id=str(10110 + i), value=v) for i, v in enumerate(["Linux", "macOS", "Windows"])],
        ),
        CustomField(id="customfield_10053", name="Escalation Owner", kind="user"),
        CustomField(id="customfield_10054", name="Root Cause", kind="textarea"),
        CustomField(id="customfield_10055", name="Target Date", kind="date"),
    ]
    return {f.id: f for f in fields}


class StateError(ValueError):
    """A helper was asked for something inconsistent (duplicate key, unknown user, …)."""


class EmulatorState(_Model):
    """One Jira site. ``mode`` decides how users are identified on the wire (accountId vs name)."""

    format: int = STATE_FORMAT
    mode: Mode = "cloud"
    server_title: str = "Tandem Jira emulator"
    counters: dict[str, int] = Field(default_factory=dict)
    users: dict[str, User] = Field(default_factory=dict)  # by key
    groups: dict[str, Group] = Field(default_factory=dict)
    statuses: dict[str, Status] = Field(default_factory=_default_statuses)
    workflows: dict[str, Workflow] = Field(default_factory=_default_workflows)
    issue_types: dict[str, IssueType] = Field(default_factory=_default_issue_types)
    priorities: dict[str, Priority] = Field(default_factory=_default_priorities)
    resolutions: dict[str, Resolution] = Field(default_factory=_default_resolutions)
    custom_fields: dict[str, CustomField] = Field(default_factory=_default_custom_fields)
    projects: dict[str, Project] = Field(default_factory=dict)  # by key
    issues: dict[str, Issue] = Field(default_factory=dict)  # by id
    keys: dict[str, str] = Field(default_factory=dict)  # issue key (incl. moved/old keys) -> id
    attachments: dict[str, AttachmentRecord] = Field(default_factory=dict)
    webhooks: dict[str, Webhook] = Field(default_factory=dict)

    # ------------------------------------------------------------------ ids

    def next_id(self, kind: str, start: int = 10000) -> str:
        value = self.counters.get(kind, start)
        self.counters[kind] = value + 1
        return str(value)

    # ------------------------------------------------------------------ users and groups

    def add_group(self, name: str) -> Group:
        if name not in self.groups:
            digest = hashlib.sha1(name.encode()).hexdigest()
            gid = f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"
            self.groups[name] = Group(name=name, group_id=gid)
        return self.groups[name]

    def add_user(
        self,
        name: str,
        *,
        password: str | None = None,
        display_name: str | None = None,
        email: str | None = None,
        groups: list[str] | None = None,
        active: bool = True,
    ) -> User:
        """Add a user who can log in with ``name`` (or email) and ``password`` (default: the name)."""
        if not name or any(u.name.lower() == name.lower() for u in self.users.values()):
            raise StateError(f"A user with the username '{name}' already exists.")
        key = name.lower()
        account_id = "5b10" + hashlib.sha1(name.encode()).hexdigest()[:20]
        user = User(
            key=key,
            name=name,
            account_id=account_id,
            display_name=display_name or name.replace(".", " ").title(),
            email=email or f"{name}@example.com",
            password=password if password is not None else name,
            active=active,
            groups=list(groups if groups is not None else ["jira-users"]),
        )
        for g in user.groups:
            self.add_group(g)
        self.users[key] = user
        return user

    def find_user(
        self, *, key: str | None = None, name: str | None = None, account_id: str | None = None
    ) -> User | None:
        if key is not None:
            return self.users.get(key.lower())
        for user in self.users.values():
            if name is not None and user.name.lower() == name.lower():
                return user
            if account_id is not None and user.account_id == account_id:
                return user
        return None

    def authenticate(self, login: str, secret: str) -> User | None:
        """Basic auth: username, email or accountId, with the password (which doubles as API token)."""
        low = login.lower()
        for user in self.users.values():
            if low in (user.name.lower(), user.email.lower(), user.account_id.lower()):
                return user if user.active and user.password == secret else None
        return None

    def user_by_token(self, token: str) -> User | None:
        """Bearer auth: a personal access token is the user's password."""
        for user in self.users.values():
            if user.active and user.password == token:
                return user
        return None

    # ------------------------------------------------------------------ workflows, projects, fields

    def add_workflow(self, workflow: Workflow) -> Workflow:
        for sid in [workflow.initial, *workflow.statuses, *(t.to for t in workflow.transitions)]:
            if sid not in self.statuses:
                raise StateError(f"The status '{sid}' does not exist.")
        self.workflows[workflow.name] = workflow
        return workflow

    def add_status(self, name: str, category: StatusCategoryKey) -> Status:
        for status in self.statuses.values():
            if status.name.lower() == name.lower():
                return status
        status = Status(id=self.next_id("status", 10100), name=name, category=category)
        self.statuses[status.id] = status
        return status

    def assign_workflow(self, project_key: str, workflow: str) -> None:
        project = self.projects.get(project_key.upper())
        if project is None:
            raise StateError(f"No project could be found with key '{project_key}'.")
        if workflow not in self.workflows:
            raise StateError(f"The workflow '{workflow}' does not exist.")
        project.workflow = workflow

    def add_project(
        self,
        key: str,
        name: str | None = None,
        *,
        lead: str | None = None,
        workflow: str = "simple",
        project_type: str = "software",
        components: list[str] | None = None,
        versions: list[str] | None = None,
        description: str = "",
    ) -> Project:
        key = key.upper()
        if not key.isalnum() or not key[0].isalpha() or not key.isupper() or len(key) > 10:
            raise StateError(
                "Project keys must start with an uppercase letter, followed by one or more uppercase "
                "alphanumeric characters."
            )
        if key in self.projects:
            raise StateError(f"A project with that project key '{key}' already exists.")
        if workflow not in self.workflows:
            raise StateError(f"The workflow '{workflow}' does not exist.")
        lead_key = lead.lower() if lead else next(iter(self.users), "")
        project = Project(
            id=self.next_id("project"),
            key=key,
            name=name or key,
            lead=lead_key,
            workflow=workflow,
            project_type=project_type,
            description=description,
        )
        for c in components or []:
            project.components.append(Component(id=self.next_id("component"), name=c))
        for v in versions or []:
            project.versions.append(Version(id=self.next_id("version"), name=v))
        self.projects[key] = project
        return project

    def project_by_id_or_key(self, value: str) -> Project | None:
        project = self.projects.get(value.upper())
        if project is not None:
            return project
        return next((p for p in self.projects.values() if p.id == value), None)

    def add_custom_field(
        self, name: str, kind: CustomKind, *, options: list[str] | None = None, field_id: str | None = None
    ) -> CustomField:
        fid = field_id or f"customfield_{self.next_id('customfield', 10100)}"
        if fid in self.custom_fields:
            raise StateError(f"The custom field '{fid}' already exists.")
        field = CustomField(
            id=fid,
            name=name,
            kind=kind,
            options=[Option(id=self.next_id("option", 10300), value=v) for v in options or []],
        )
        self.custom_fields[fid] = field
        return field

    # ------------------------------------------------------------------ issues

    def issue(self, id_or_key: str) -> Issue | None:
        issue = self.issues.get(id_or_key)
        if issue is not None:
            return issue
        iid = self.keys.get(id_or_key.upper())
        return self.issues.get(iid) if iid is not None else None

    def workflow_of(self, issue: Issue) -> Workflow:
        return self.workflows[self.projects[issue.project].workflow]

    def user_ref(self, key: str | None) -> UserRef | None:
        user = self.users.get(key) if key else None
        if user is None:
            return None
        # Built without validation: every part is a str (or None) of an already validated User.
        return UserRef.model_construct(
            email=user.email,
            display_name=user.display_name,
            account_id=user.account_id if self.mode == "cloud" else None,
            username=user.name if self.mode == "server" else None,
        )

    def field_names(self) -> dict[str, str]:
        return {f.id: f.name for f in self.custom_fields.values()}

    def custom_display(self, field: CustomField, value: Any) -> Any:
        """A custom field value as JQL and replicas see it (option values, user names, plain text)."""
        if value is None:
            return None
        if field.kind == "select":
            return next((o.value for o in field.options if o.id == value), None)
        if field.kind == "multiselect":
            return [o.value for o in field.options if o.id in value]
        if field.kind == "user":
            user = self.users.get(value)
            return user.display_name if user else None
        if field.kind == "textarea":
            from protocol.richtext import plain_text

            return plain_text(value)
        return value

    def to_snapshot(self, issue: Issue, base_url: str = "") -> IssueSnapshot:
        """The neutral view of an issue (what JQL evaluates and what an adapter would produce).

        Built with ``model_construct``: every value comes from this state's own models, validated
        when they were stored (bodies are docs the converters made), so validating them again (a
        recursive walk of each comment body) would only cost time; a search builds one snapshot
        per changed issue. Lists and dicts are the snapshot's own copies, as validation would make.
        """
        status = self.statuses[issue.status]
        project = self.projects[issue.project]
        comp = {c.id: c.name for c in project.components}
        vers = {v.id: v.name for v in project.versions}
        refs: dict[str | None, UserRef | None] = {}  # each person once per snapshot (~10 mentions)

        def ref(key: str | None) -> UserRef | None:
            if key not in refs:
                refs[key] = self.user_ref(key)
            return refs[key]

        changelog: list[ChangeItem] = []
        for history in issue.histories:
            author = ref(history.author)
            for item in history.items:
                changelog.append(
                    ChangeItem.model_construct(
                        field=item.field_id,
                        from_value=item.from_string,
                        to_value=item.to_string,
                        from_id=item.from_,
                        to_id=item.to,
                        author=author,
                        at=history.created,
                    )
                )
        custom = {
            fid: self.custom_display(self.custom_fields[fid], value)
            for fid, value in issue.custom.items()
            if fid in self.custom_fields and value is not None
        }
        comments = [
            NeutralComment.model_construct(
                id=c.id,
                author=ref(c.author),
                body=c.body,
                created=c.created,
                updated=c.updated,
                internal=c.internal,
            )
            for c in issue.comments
        ]
        attachments = []
        for aid in issue.attachments:
            rec = self.attachments.get(aid)
            if rec is not None:
                attachments.append(
                    NeutralAttachment.model_construct(
                        id=rec.id,
                        filename=rec.filename,
                        size=len(rec.content),
                        mime_type=rec.mime_type,
                        sha256=rec.sha256,
                        created=rec.created,
                        author=ref(rec.author),
                        url=None,
                    )
                )
        last_author = issue.histories[-1].author if issue.histories else issue.creator
        return IssueSnapshot.model_construct(
            tracker="jira",
            id=issue.id,
            key=issue.key,
            url=f"{base_url}/browse/{issue.key}" if base_url else None,
            project=issue.project,
            summary=issue.summary,
            description=issue.description,
            status=StatusRef.model_construct(name=status.name, category=status.category),
            resolution=self.resolutions[issue.resolution].name if issue.resolution else None,
            priority=self.priorities[issue.priority].name if issue.priority else None,
            issue_type=self.issue_types[issue.issuetype].name,
            labels=list(issue.labels),
            components=[comp[c] for c in issue.components if c in comp],
            fix_versions=[vers[v] for v in issue.fix_versions if v in vers],
            affects_versions=[vers[v] for v in issue.versions if v in vers],
            due_date=dt.date.fromisoformat(issue.duedate) if issue.duedate else None,
            assignee=ref(issue.assignee),
            reporter=ref(issue.reporter),
            creator=ref(issue.creator),
            custom_fields=custom,
            field_names=self.field_names(),
            comments=comments,
            comment_markers={},
            attachments=attachments,
            worklogs=[],
            links=[],
            parent=None,
            properties=dict(issue.properties),
            watchers=[r for r in (ref(w) for w in issue.watchers) if r is not None],
            votes=0,
            created=issue.created,
            updated=issue.updated,
            resolved=issue.resolutiondate,
            updated_by=ref(last_author),
            changelog=changelog,
            raw={},
        )

    # ------------------------------------------------------------------ persistence

    def save(self, path: Path) -> None:
        """Write atomically: a crash mid-write leaves the previous file intact."""
        data = self.model_dump_json()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: Path) -> EmulatorState:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise StateError(f"cannot read emulator state {path}: {err}") from err
        if not isinstance(raw, dict) or raw.get("format") != STATE_FORMAT:
            raise StateError(f"{path} is not an emulator state file (format {STATE_FORMAT})")
        try:
            return cls.model_validate_json(json.dumps(raw))
        except ValueError as err:
            raise StateError(f"emulator state {path} is invalid: {err}") from err


def new_state(mode: Mode, *, user: str = "admin", password: str = "admin") -> EmulatorState:
    """A fresh site with one administrator (the account the node or a test logs in as)."""
    state = EmulatorState(mode=mode)
    state.add_group("jira-administrators")
    state.add_group("jira-users")
    state.add_user(
        user,
        password=password,
        display_name="Administrator" if user == "admin" else None,
        groups=["jira-administrators", "jira-users"],
    )
    return state
