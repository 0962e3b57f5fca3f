"""The rule engine: rule types (threshold, comparison, statistical, schedule), alerts, actions, the engine.

Start with ``workbench.rules.engine.RuleEngine`` (evaluation, alerts, actions, scheduler), the rule-type
contract in ``workbench.rules.types`` and the action contract in ``workbench.rules.actions.base``.
Late and out-of-order points: ``workbench.rules.gate`` (durations) and ``workbench.rules.statistical``.
"""
