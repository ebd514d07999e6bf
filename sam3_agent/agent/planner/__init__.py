"""The built-in query planner: answers common English query shapes with no language model.

``grammar`` reads a query into a typed ``Plan`` (``plan``); ``QueryPlanner`` (``model``) is the ``ChatModel``
that carries the plan out through the agent's tools; ``words`` inflects noun phrases for fallbacks.
"""

from sam3_agent.agent.planner.grammar import NotUnderstood, parse_query
from sam3_agent.agent.planner.model import QueryPlanner, plan_for
from sam3_agent.agent.planner.plan import Plan

__all__ = ["NotUnderstood", "Plan", "QueryPlanner", "parse_query", "plan_for"]
