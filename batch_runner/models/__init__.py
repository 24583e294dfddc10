"""Model definitions: what each Wiro model takes, derived from the service's tool records.

Layer between ``wiro`` (which fetches the records) and ``manifest`` (which checks jobs against
them): :mod:`.items` and :mod:`.definition` turn a tool record into typed inputs, a JSON
Schema (:mod:`.schema`) and price tiers (:mod:`.prices`), purely; :mod:`.store` knows where
definition files live; :mod:`.resolver` finds one (project, user cache, package, service)
and :mod:`.fetch` reaches the service.
"""
