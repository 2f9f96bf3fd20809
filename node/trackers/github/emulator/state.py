"""The GitHub emulator's data: users and tokens, repositories, issues, comments, labels, milestones
and repository webhooks, held in memory. Pure data plus the invariants GitHub keeps (issue numbers
per repository, global ids, labels created on first use); no HTTP here (see ``server``).
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
_LOGIN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$")
DEFAULT_LABELS = (
    ("bug", "d73a4a", "Something isn't working"),
    ("documentation", "0075ca", "Improvements or additions to documentation"),
    ("enhancement", "a2eeef", "New feature or request"),
)


class StateError(ValueError):
    """A request the emulated GitHub refuses; ``status`` and ``errors`` shape the HTTP answer."""

    def __init__(self, message: str, status: int = 422, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.errors = errors or []


def invalid(
    field: str,
    resource: str = "Issue",
    code: str = "invalid",
    *,
    value: Any = None,
    message: str | None = None,
    title: str = "Validation Failed",
) -> StateError:
    """GitHub's 422 for one bad field: ``{"message": title, "errors": [{resource, code, field, …}]}``."""
    err: dict[str, Any] = {"resource": resource, "code": code, "field": field}
    if message is not None:
        err["message"] = message
    if value is not None:
        err["value"] = value
    return StateError(title, errors=[err])


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def gh_time(value: dt.datetime | None) -> str | None:
    """GitHub's timestamp format: ISO 8601, seconds, ``Z``."""
    if value is None:
        return None
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class User:
    id: int
    login: str
    name: str | None = None
    email: str | None = None
    type: str = "User"  # or "Organization"
    created_at: dt.datetime = field(default_factory=utcnow)


@dataclass
class Label:
    id: int
    name: str
    color: str = "ededed"
    description: str | None = None
    default: bool = False


@dataclass
class Milestone:
    id: int
    number: int
    title: str
    creator: str
    description: str | None = None
    state: str = "open"
    due_on: dt.datetime | None = None
    created_at: dt.datetime = field(default_factory=utcnow)
    updated_at: dt.datetime = field(default_factory=utcnow)
    closed_at: dt.datetime | None = None


@dataclass
class Comment:
    id: int
    repo: str  # full name key (lower case)
    number: int
    user: str
    body: str
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclass
class Issue:
    id: int
    number: int
    title: str
    user: str
    body: str | None = None
    state: str = "open"
    state_reason: str | None = None
    labels: list[str] = field(default_factory=list)  # label names, as stored on the repo
    assignees: list[str] = field(default_factory=list)
    milestone: int | None = None
    locked: bool = False
    is_pull_request: bool = False
    created_at: dt.datetime = field(default_factory=utcnow)
    updated_at: dt.datetime = field(default_factory=utcnow)
    closed_at: dt.datetime | None = None
    closed_by: str | None = None
    comment_ids: list[int] = field(default_factory=list)
    events: list[IssueEvent] = field(default_factory=list)


@dataclass
class IssueEvent:
    """One entry of ``/issues/{n}/events`` (labeled, assigned, closed, renamed, ...)."""

    id: int
    actor: str
    event: str
    created_at: dt.datetime
    data: dict[str, Any] = field(default_factory=dict)  # label / assignee / milestone / rename / state_reason


@dataclass
class Hook:
    id: int
    url: str
    content_type: str = "json"
    secret: str | None = None
    insecure_ssl: str = "0"
    events: list[str] = field(default_factory=lambda: ["push"])
    active: bool = True
    created_at: dt.datetime = field(default_factory=utcnow)
    updated_at: dt.datetime = field(default_factory=utcnow)
    last_response: dict[str, Any] = field(
        default_factory=lambda: {"code": None, "status": "unused", "message": None}
    )


@dataclass
class Repo:
    id: int
    owner: str
    name: str
    private: bool = False
    description: str | None = None
    has_issues: bool = True
    created_at: dt.datetime = field(default_factory=utcnow)
    updated_at: dt.datetime = field(default_factory=utcnow)
    issues: dict[int, Issue] = field(default_factory=dict)
    labels: dict[str, Label] = field(default_factory=dict)  # lower-case name -> label
    milestones: dict[int, Milestone] = field(default_factory=dict)
    hooks: dict[int, Hook] = field(default_factory=dict)
    next_number: int = 1
    next_milestone: int = 1

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"

    @property
    def key(self) -> str:
        return self.full_name.lower()


class GitHubState:
    """Everything the emulated GitHub knows. Names are matched case-insensitively, as GitHub does."""

    def __init__(self, *, clock: Callable[[], dt.datetime] = utcnow) -> None:
        self.clock = clock
        self.users: dict[str, User] = {}  # lower-case login -> user
        self.tokens: dict[str, str] = {}  # token -> lower-case login
        self.repos: dict[str, Repo] = {}  # lower-case full name -> repo
        self.comments: dict[int, Comment] = {}
        self._ids = itertools.count(1000)

    def next_id(self) -> int:
        return next(self._ids)

    # ------------------------------------------------------------------ users

    def add_user(
        self,
        login: str,
        *,
        token: str | None = None,
        name: str | None = None,
        email: str | None = None,
        type: str = "User",
    ) -> User:
        """Create a user (or an organisation, ``type="Organization"``); ``token`` authenticates as it."""
        if not _LOGIN.match(login):
            raise StateError(f"invalid login {login!r}")
        if login.lower() in self.users:
            raise StateError(f"login {login!r} is already taken")
        user = User(
            id=self.next_id(), login=login, name=name, email=email, type=type, created_at=self.clock()
        )
        self.users[login.lower()] = user
        if token:
            self.add_token(login, token)
        return user

    def add_token(self, login: str, token: str | None = None) -> str:
        user = self.user(login)
        token = token or "ghp_" + secrets.token_hex(18)
        self.tokens[token] = user.login.lower()
        return token

    def user(self, login: str) -> User:
        try:
            return self.users[login.lower()]
        except KeyError:
            raise StateError(f"no user {login!r}", status=404) from None

    def find_user(self, login: str) -> User | None:
        return self.users.get(login.lower())

    def user_by_id(self, user_id: int) -> User | None:
        return next((u for u in self.users.values() if u.id == user_id), None)

    def user_by_token(self, token: str) -> User | None:
        login = self.tokens.get(token)
        return self.users.get(login) if login else None

    # ------------------------------------------------------------------ repositories

    def create_repo(
        self,
        owner: str,
        name: str,
        *,
        private: bool = False,
        description: str | None = None,
        has_issues: bool = True,
    ) -> Repo:
        owner_user = self.user(owner)
        if not _NAME.match(name) or name in (".", ".."):
            raise invalid(
                "name", "Repository", "custom", message="name is invalid", title="Repository creation failed."
            )
        key = f"{owner_user.login}/{name}".lower()
        if key in self.repos:
            raise invalid(
                "name",
                "Repository",
                "custom",
                message="name already exists on this account",
                title="Repository creation failed.",
            )
        now = self.clock()
        repo = Repo(
            id=self.next_id(),
            owner=owner_user.login,
            name=name,
            private=private,
            description=description,
            has_issues=has_issues,
            created_at=now,
            updated_at=now,
        )
        for label_name, color, text in DEFAULT_LABELS:
            repo.labels[label_name] = Label(self.next_id(), label_name, color, text, default=True)
        self.repos[key] = repo
        return repo

    def repo(self, owner: str, name: str) -> Repo:
        try:
            return self.repos[f"{owner}/{name}".lower()]
        except KeyError:
            raise StateError("Not Found", status=404) from None

    # ------------------------------------------------------------------ labels and milestones

    def label(self, repo: Repo, name: str, *, create: bool = False) -> Label:
        found = repo.labels.get(name.lower())
        if found is not None:
            return found
        if not create:
            raise StateError("Not Found", status=404)
        if not name.strip() or len(name) > 50:
            raise invalid("name", "Label")
        label = Label(self.next_id(), name)
        repo.labels[name.lower()] = label
        return label

    def add_label(
        self, repo: Repo, name: str, color: str = "ededed", description: str | None = None
    ) -> Label:
        if name.lower() in repo.labels:
            raise invalid("name", "Label", "already_exists")
        if not re.fullmatch(r"[0-9a-fA-F]{6}", color):
            raise invalid("color", "Label")
        label = self.label(repo, name, create=True)
        label.color = color.lower()
        label.description = description
        return label

    def add_milestone(
        self,
        repo: Repo,
        title: str,
        creator: str,
        *,
        description: str | None = None,
        state: str = "open",
        due_on: dt.datetime | None = None,
    ) -> Milestone:
        if not title.strip():
            raise invalid("title", "Milestone", "missing_field")
        if any(m.title == title for m in repo.milestones.values()):
            raise invalid("title", "Milestone", "already_exists")
        if state not in ("open", "closed"):
            raise invalid("state", "Milestone")
        now = self.clock()
        milestone = Milestone(
            id=self.next_id(),
            number=repo.next_milestone,
            title=title,
            creator=creator,
            description=description,
            state=state,
            due_on=due_on,
            created_at=now,
            updated_at=now,
            closed_at=now if state == "closed" else None,
        )
        repo.next_milestone += 1
        repo.milestones[milestone.number] = milestone
        return milestone

    # ------------------------------------------------------------------ issues and comments

    def issue(self, repo: Repo, number: int) -> Issue:
        found = repo.issues.get(number)
        if found is None:
            raise StateError("Not Found", status=404)
        return found

    def create_issue(self, repo: Repo, user: str, title: str, *, pull_request: bool = False) -> Issue:
        if not repo.has_issues and not pull_request:
            raise StateError("Issues are disabled for this repo", status=410)
        now = self.clock()
        issue = Issue(
            id=self.next_id(),
            number=repo.next_number,
            title=title,
            user=self.user(user).login,
            is_pull_request=pull_request,
            created_at=now,
            updated_at=now,
        )
        repo.next_number += 1
        repo.issues[issue.number] = issue
        return issue

    def add_comment(self, repo: Repo, issue: Issue, user: str, body: str) -> Comment:
        now = self.clock()
        comment = Comment(self.next_id(), repo.key, issue.number, self.user(user).login, body, now, now)
        self.comments[comment.id] = comment
        issue.comment_ids.append(comment.id)
        issue.updated_at = now
        return comment

    def comment(self, repo: Repo, comment_id: int) -> Comment:
        found = self.comments.get(comment_id)
        if found is None or found.repo != repo.key:
            raise StateError("Not Found", status=404)
        return found

    def delete_comment(self, repo: Repo, comment: Comment) -> None:
        self.comments.pop(comment.id, None)
        issue = repo.issues.get(comment.number)
        if issue is not None and comment.id in issue.comment_ids:
            issue.comment_ids.remove(comment.id)
            issue.updated_at = self.clock()
