"""Rules: what a node shares (outgoing) and how it applies what it receives (incoming).

Three modes over one engine: **Basic** (fixed defaults), **Visual** (a declarative YAML/JSON mapping,
:mod:`node.rules.config`) and **Script** (Python syntax in a sandboxed worker process,
:mod:`node.rules.sandbox`). See ``docs/rules.md``.

The engine calls::

    compiled = compile_rules(RuleSet(mode="visual", direction="outgoing", source=text))
    replica = compiled.outgoing(snapshot, OutgoingContext(...))           # or None: not sent
    changes = compiled.incoming(replica, previous, local, IncomingContext(...))  # a ChangeSet

Nothing here talks to a tracker, a peer or the store.
"""

from __future__ import annotations

from node.rules.changes import (
    AttachmentAdd,
    AttachmentDelete,
    ChangeSet,
    CommentAdd,
    CommentDelete,
    CommentEdit,
    Conflict,
    UserChange,
    UserResolution,
)
from node.rules.config import VisualRules, load_visual
from node.rules.context import IncomingContext, OutgoingContext
from node.rules.errors import RuleError
from node.rules.ruleset import (
    CompiledRules,
    OutgoingResult,
    RuleHistory,
    RuleSet,
    TestRunResult,
    compile_rules,
    test_run,
)
from node.rules.sandbox import ScriptPool, ScriptTimeout, default_pool

__all__ = [
    "AttachmentAdd",
    "AttachmentDelete",
    "ChangeSet",
    "CommentAdd",
    "CommentDelete",
    "CommentEdit",
    "CompiledRules",
    "Conflict",
    "IncomingContext",
    "OutgoingContext",
    "OutgoingResult",
    "RuleError",
    "RuleHistory",
    "RuleSet",
    "ScriptPool",
    "ScriptTimeout",
    "TestRunResult",
    "UserChange",
    "UserResolution",
    "VisualRules",
    "compile_rules",
    "default_pool",
    "load_visual",
    "test_run",
]
