"""JSON shapes of the emulated GitHub, field for field as in GitHub's OpenAPI description
(``components/schemas``: ``simple-user``, ``private-user``, ``full-repository``, ``issue``,
``issue-comment``, ``label``, ``milestone``, ``hook``) and the webhook payloads. Pure functions.
"""

from __future__ import annotations

import base64
from typing import Any

from .state import Comment, GitHubState, Hook, Issue, IssueEvent, Label, Milestone, Repo, User, gh_time

_REACTIONS = ("+1", "-1", "laugh", "confused", "heart", "hooray", "eyes", "rocket")


def node_id(kind: str, ident: int) -> str:
    return base64.b64encode(f"0{len(kind)}:{kind}{ident}".encode()).decode("ascii").rstrip("=")


class View:
    """Renders state objects with URLs rooted at ``api`` (REST root) and ``web`` (HTML root)."""

    def __init__(self, state: GitHubState, api: str, web: str) -> None:
        self.state = state
        self.api = api.rstrip("/")
        self.web = web.rstrip("/")

    # ------------------------------------------------------------------ users

    def user(self, user: User | str | None) -> dict[str, Any] | None:
        if user is None:
            return None
        if isinstance(user, str):
            found = self.state.find_user(user)
            if found is None:
                return None
            user = found
        u = f"{self.api}/users/{user.login}"
        return {
            "login": user.login,
            "id": user.id,
            "node_id": node_id("User", user.id),
            "avatar_url": f"{self.web}/avatars/u/{user.id}?v=4",
            "gravatar_id": "",
            "url": u,
            "html_url": f"{self.web}/{user.login}",
            "followers_url": f"{u}/followers",
            "following_url": f"{u}/following{{/other_user}}",
            "gists_url": f"{u}/gists{{/gist_id}}",
            "starred_url": f"{u}/starred{{/owner}}{{/repo}}",
            "subscriptions_url": f"{u}/subscriptions",
            "organizations_url": f"{u}/orgs",
            "repos_url": f"{u}/repos",
            "events_url": f"{u}/events{{/privacy}}",
            "received_events_url": f"{u}/received_events",
            "type": user.type,
            "user_view_type": "public",
            "site_admin": False,
        }

    def full_user(self, user: User, *, private: bool) -> dict[str, Any]:
        out = self.user(user)
        assert out is not None
        owned = sum(1 for r in self.state.repos.values() if r.owner.lower() == user.login.lower())
        out.update(
            name=user.name,
            company=None,
            blog="",
            location=None,
            email=user.email,
            hireable=None,
            bio=None,
            twitter_username=None,
            public_repos=owned,
            public_gists=0,
            followers=0,
            following=0,
            created_at=gh_time(user.created_at),
            updated_at=gh_time(user.created_at),
        )
        if private:
            out.update(
                user_view_type="private",
                private_gists=0,
                total_private_repos=0,
                owned_private_repos=0,
                disk_usage=0,
                collaborators=0,
                two_factor_authentication=False,
                plan={"name": "free", "space": 976562499, "private_repos": 10000, "collaborators": 0},
            )
        return out

    # ------------------------------------------------------------------ repositories

    def repo(self, repo: Repo, *, full: bool = False, viewer: User | None = None) -> dict[str, Any]:
        r = f"{self.api}/repos/{repo.full_name}"
        open_count = sum(1 for i in repo.issues.values() if i.state == "open")
        owner = self.state.find_user(repo.owner)
        out: dict[str, Any] = {
            "id": repo.id,
            "node_id": node_id("Repository", repo.id),
            "name": repo.name,
            "full_name": repo.full_name,
            "private": repo.private,
            "owner": self.user(owner),
            "html_url": f"{self.web}/{repo.full_name}",
            "description": repo.description,
            "fork": False,
            "url": r,
            "archive_url": f"{r}/{{archive_format}}{{/ref}}",
            "assignees_url": f"{r}/assignees{{/user}}",
            "blobs_url": f"{r}/git/blobs{{/sha}}",
            "branches_url": f"{r}/branches{{/branch}}",
            "collaborators_url": f"{r}/collaborators{{/collaborator}}",
            "comments_url": f"{r}/comments{{/number}}",
            "commits_url": f"{r}/commits{{/sha}}",
            "compare_url": f"{r}/compare/{{base}}...{{head}}",
            "contents_url": f"{r}/contents/{{+path}}",
            "contributors_url": f"{r}/contributors",
            "deployments_url": f"{r}/deployments",
            "downloads_url": f"{r}/downloads",
            "events_url": f"{r}/events",
            "forks_url": f"{r}/forks",
            "git_commits_url": f"{r}/git/commits{{/sha}}",
            "git_refs_url": f"{r}/git/refs{{/sha}}",
            "git_tags_url": f"{r}/git/tags{{/sha}}",
            "git_url": f"git://{self.web.split('://', 1)[-1]}/{repo.full_name}.git",
            "issue_comment_url": f"{r}/issues/comments{{/number}}",
            "issue_events_url": f"{r}/issues/events{{/number}}",
            "issues_url": f"{r}/issues{{/number}}",
            "keys_url": f"{r}/keys{{/key_id}}",
            "labels_url": f"{r}/labels{{/name}}",
            "languages_url": f"{r}/languages",
            "merges_url": f"{r}/merges",
            "milestones_url": f"{r}/milestones{{/number}}",
            "notifications_url": f"{r}/notifications{{?since,all,participating}}",
            "pulls_url": f"{r}/pulls{{/number}}",
            "releases_url": f"{r}/releases{{/id}}",
            "ssh_url": f"git@{self.web.split('://', 1)[-1]}:{repo.full_name}.git",
            "stargazers_url": f"{r}/stargazers",
            "statuses_url": f"{r}/statuses/{{sha}}",
            "subscribers_url": f"{r}/subscribers",
            "subscription_url": f"{r}/subscription",
            "tags_url": f"{r}/tags",
            "teams_url": f"{r}/teams",
            "trees_url": f"{r}/git/trees{{/sha}}",
            "clone_url": f"{self.web}/{repo.full_name}.git",
            "mirror_url": None,
            "hooks_url": f"{r}/hooks",
            "svn_url": f"{self.web}/{repo.full_name}",
            "homepage": None,
            "language": None,
            "forks_count": 0,
            "stargazers_count": 0,
            "watchers_count": 0,
            "size": 0,
            "default_branch": "main",
            "open_issues_count": open_count,
            "is_template": False,
            "topics": [],
            "has_issues": repo.has_issues,
            "has_projects": True,
            "has_wiki": True,
            "has_pages": False,
            "has_downloads": True,
            "has_discussions": False,
            "archived": False,
            "disabled": False,
            "visibility": "private" if repo.private else "public",
            "pushed_at": gh_time(repo.created_at),
            "created_at": gh_time(repo.created_at),
            "updated_at": gh_time(repo.updated_at),
            "forks": 0,
            "open_issues": open_count,
            "watchers": 0,
            "license": None,
            "allow_forking": True,
            "web_commit_signoff_required": False,
        }
        if viewer is not None:
            admin = viewer.login.lower() == repo.owner.lower()
            out["permissions"] = {
                "admin": admin,
                "maintain": admin,
                "push": True,
                "triage": True,
                "pull": True,
            }
        if full:
            out.update(network_count=0, subscribers_count=0)
            if owner is not None and owner.type == "Organization":
                out["organization"] = self.user(owner)
        return out

    # ------------------------------------------------------------------ issues

    def label(self, repo: Repo, label: Label) -> dict[str, Any]:
        return {
            "id": label.id,
            "node_id": node_id("Label", label.id),
            "url": f"{self.api}/repos/{repo.full_name}/labels/{label.name}",
            "name": label.name,
            "color": label.color,
            "default": label.default,
            "description": label.description,
        }

    def milestone(self, repo: Repo, milestone: Milestone | None) -> dict[str, Any] | None:
        if milestone is None:
            return None
        m = f"{self.api}/repos/{repo.full_name}/milestones/{milestone.number}"
        issues = [i for i in repo.issues.values() if i.milestone == milestone.number]
        return {
            "url": m,
            "html_url": f"{self.web}/{repo.full_name}/milestone/{milestone.number}",
            "labels_url": f"{m}/labels",
            "id": milestone.id,
            "node_id": node_id("Milestone", milestone.id),
            "number": milestone.number,
            "state": milestone.state,
            "title": milestone.title,
            "description": milestone.description,
            "creator": self.user(milestone.creator),
            "open_issues": sum(1 for i in issues if i.state == "open"),
            "closed_issues": sum(1 for i in issues if i.state == "closed"),
            "created_at": gh_time(milestone.created_at),
            "updated_at": gh_time(milestone.updated_at),
            "closed_at": gh_time(milestone.closed_at),
            "due_on": gh_time(milestone.due_on),
        }

    def reactions(self, url: str) -> dict[str, Any]:
        return {"url": f"{url}/reactions", "total_count": 0, **dict.fromkeys(_REACTIONS, 0)}

    def issue(self, repo: Repo, issue: Issue, *, webhook: bool = False) -> dict[str, Any]:
        i = f"{self.api}/repos/{repo.full_name}/issues/{issue.number}"
        kind = "pull" if issue.is_pull_request else "issues"
        assignees = [a for a in (self.user(login) for login in issue.assignees) if a is not None]
        labels = [self.label(repo, repo.labels[n.lower()]) for n in issue.labels if n.lower() in repo.labels]
        out: dict[str, Any] = {
            "url": i,
            "repository_url": f"{self.api}/repos/{repo.full_name}",
            "labels_url": f"{i}/labels{{/name}}",
            "comments_url": f"{i}/comments",
            "events_url": f"{i}/events",
            "html_url": f"{self.web}/{repo.full_name}/{kind}/{issue.number}",
            "id": issue.id,
            "node_id": node_id("PullRequest" if issue.is_pull_request else "Issue", issue.id),
            "number": issue.number,
            "title": issue.title,
            "user": self.user(issue.user),
            "labels": labels,
            "state": issue.state,
            "locked": issue.locked,
            "assignee": assignees[0] if assignees else None,
            "assignees": assignees,
            "milestone": self.milestone(repo, repo.milestones.get(issue.milestone or -1)),
            "comments": len(issue.comment_ids),
            "created_at": gh_time(issue.created_at),
            "updated_at": gh_time(issue.updated_at),
            "closed_at": gh_time(issue.closed_at),
            "author_association": "OWNER" if issue.user.lower() == repo.owner.lower() else "CONTRIBUTOR",
            "active_lock_reason": None,
            "body": issue.body,
            "reactions": self.reactions(i),
            "timeline_url": f"{i}/timeline",
            "performed_via_github_app": None,
        }
        if issue.state_reason is not None:
            # GitHub sends null here, but the OpenAPI description's enum has no null: omit it instead
            out["state_reason"] = issue.state_reason
        if not webhook:
            out["closed_by"] = self.user(issue.closed_by) if issue.closed_by else None
        if issue.is_pull_request:
            p = f"{self.api}/repos/{repo.full_name}/pulls/{issue.number}"
            out["draft"] = False
            out["pull_request"] = {
                "url": p,
                "html_url": f"{self.web}/{repo.full_name}/pull/{issue.number}",
                "diff_url": f"{self.web}/{repo.full_name}/pull/{issue.number}.diff",
                "patch_url": f"{self.web}/{repo.full_name}/pull/{issue.number}.patch",
                "merged_at": None,
            }
        return out

    def comment(self, repo: Repo, comment: Comment) -> dict[str, Any]:
        c = f"{self.api}/repos/{repo.full_name}/issues/comments/{comment.id}"
        return {
            "url": c,
            "html_url": f"{self.web}/{repo.full_name}/issues/{comment.number}#issuecomment-{comment.id}",
            "issue_url": f"{self.api}/repos/{repo.full_name}/issues/{comment.number}",
            "id": comment.id,
            "node_id": node_id("IssueComment", comment.id),
            "user": self.user(comment.user),
            "created_at": gh_time(comment.created_at),
            "updated_at": gh_time(comment.updated_at),
            "author_association": "OWNER" if comment.user.lower() == repo.owner.lower() else "CONTRIBUTOR",
            "body": comment.body,
            "reactions": self.reactions(c),
            "performed_via_github_app": None,
        }

    def event(self, repo: Repo, event: IssueEvent) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": event.id,
            "node_id": node_id("IssueEvent", event.id),
            "url": f"{self.api}/repos/{repo.full_name}/issues/events/{event.id}",
            "actor": self.user(event.actor),
            "event": event.event,
            "commit_id": None,
            "commit_url": None,
            "created_at": gh_time(event.created_at),
            "performed_via_github_app": None,
        }
        data = dict(event.data)
        if "assignee" in data:
            out["assignee"] = self.user(data.pop("assignee"))
            out["assigner"] = self.user(event.actor)
        out.update(data)
        return out

    def hook(self, repo: Repo, hook: Hook) -> dict[str, Any]:
        h = f"{self.api}/repos/{repo.full_name}/hooks/{hook.id}"
        config: dict[str, Any] = {
            "url": hook.url,
            "content_type": hook.content_type,
            "insecure_ssl": hook.insecure_ssl,
        }
        if hook.secret:
            config["secret"] = "********"
        return {
            "type": "Repository",
            "id": hook.id,
            "name": "web",
            "active": hook.active,
            "events": list(hook.events),
            "config": config,
            "updated_at": gh_time(hook.updated_at),
            "created_at": gh_time(hook.created_at),
            "url": h,
            "test_url": f"{h}/test",
            "ping_url": f"{h}/pings",
            "deliveries_url": f"{h}/deliveries",
            "last_response": dict(hook.last_response),
        }
