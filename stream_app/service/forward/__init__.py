"""``finpulse alerts forward``: deliver alerts from the alert topic to webhooks, Slack and
Alertmanager.

Pure parts, importable without Kafka, Redis or HTTP: ``config`` (the routes file and the
env fallback, validated with pydantic), ``routing`` (which sinks an alert goes to),
``payloads`` (webhook body and signature, Slack text, Alertmanager alerts and the
firing/escalation/resolve bookkeeping Alertmanager needs), ``retry`` (back-off and what an
HTTP answer means). Adapters: ``ledger`` (Redis: what each sink acknowledged),
``sinks`` (aiohttp), ``forwarder`` (the Kafka consumer loop, dead letters, re-sends).

Delivery contract (details in ``forwarder``): the forwarder reads the alert topic in its
own consumer group, so a slow or broken sink never slows the worker. An offset is
committed only after every routed sink acknowledged the alert or the alert was
dead-lettered for that sink (at-least-once: nothing is lost). What each sink acknowledged
is recorded in Redis, so a restart or rebalance does not deliver it again; a repeated
request under one ``alert_id`` always carries ``X-Finpulse-Attempt`` and
``X-Finpulse-Retry-Reason``.
"""
