"""Day-ahead planner that moves single-GPU AI jobs between renewable-powered micro-datacenters.

Data flows one way: instance files -> validated :class:`~milp.instance.Instance` -> policy
(greedy or MILP) -> :class:`~milp.plan.Plan` -> :func:`~milp.evaluate.evaluate` -> reports.
"""

__version__ = "0.1.0"
