"""PyGithub (a real, synchronous GitHub client) works against the emulator, at the root and under
the GitHub Enterprise style ``/api/v3`` prefix. PyGithub runs in a worker thread."""

from __future__ import annotations

import asyncio

import pytest
from github import Auth, Github, GithubException

from .conftest import BOT_TOKEN, HUMAN_TOKEN, Site

# PyGithub spaces requests out (0.25 s, and 1 s between writes) to be kind to github.com
NO_THROTTLE = {"seconds_between_requests": None, "seconds_between_writes": None}


@pytest.mark.parametrize("prefix", ["", "/api/v3"])
async def test_pygithub_repo_issue_comment_labels_close(site: Site, prefix: str) -> None:
    def scenario() -> dict[str, object]:
        gh = Github(base_url=site.url + prefix, auth=Auth.Token(BOT_TOKEN), retry=None, **NO_THROTTLE)
        try:
            me = gh.get_user()
            repo = me.create_repo("pyg", description="made by PyGithub")
            repo.create_label("prio:high", "ff0000", "urgent")
            issue = repo.create_issue(
                "From PyGithub", body="Hello **world**", labels=["bug"], assignee="jane"
            )
            comment = issue.create_comment("first")
            comment.edit("first, edited")
            issue.edit(title="From PyGithub (edited)", state="closed", state_reason="not_planned")
            issue.add_to_labels("prio:high")
            issue.remove_from_labels("bug")
            milestone = repo.create_milestone("v1")
            issue.edit(milestone=milestone)
            for i in range(31):  # more than one default page (30)
                repo.create_issue(f"filler {i}")
            again = gh.get_repo(f"{me.login}/pyg").get_issue(issue.number)
            with pytest.raises(GithubException) as info:
                repo.get_issue(9999)
            return {
                "login": me.login,
                "title": again.title,
                "state": (again.state, again.state_reason),
                "labels": sorted(lb.name for lb in again.labels),
                "assignees": [a.login for a in again.assignees],
                "comments": [c.body for c in again.get_comments()],
                "milestone": again.milestone.title,
                "all_issues": repo.get_issues(state="all").totalCount,
                "missing_status": info.value.status,
            }
        finally:
            gh.close()

    got = await asyncio.to_thread(scenario)
    assert got == {
        "login": "bot",
        "title": "From PyGithub (edited)",
        "state": ("closed", "not_planned"),
        "labels": ["prio:high"],
        "assignees": ["jane"],
        "comments": ["first, edited"],
        "milestone": "v1",
        "all_issues": 32,
        "missing_status": 404,
    }


async def test_pygithub_as_a_human_with_another_token(site: Site) -> None:
    site.emu.state.create_repo("jane", "own")

    def scenario() -> tuple[str, str]:
        gh = Github(base_url=site.url, auth=Auth.Token(HUMAN_TOKEN), retry=None, **NO_THROTTLE)
        try:
            issue = gh.get_repo("bot/tracker").create_issue("by jane")
            return gh.get_user().login, issue.user.login
        finally:
            gh.close()

    assert await asyncio.to_thread(scenario) == ("jane", "jane")


async def test_pygithub_bad_token_is_401(site: Site) -> None:
    def scenario() -> int:
        gh = Github(base_url=site.url, auth=Auth.Token("ghp_nope"), retry=None, **NO_THROTTLE)
        try:
            gh.get_user().login  # noqa: B018 - forces the request
        except GithubException as exc:
            return exc.status
        finally:
            gh.close()
        return 200

    assert await asyncio.to_thread(scenario) == 401
