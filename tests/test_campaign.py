"""The CI campaign: every sandbox fault on, the real CLI SIGKILLed at seeded random moments and
restarted, then finished; afterwards nothing is lost, nothing is paid twice, nothing leaks.

The invariants and the figures live in ``campaignlib`` (shared with ``scripts/campaign.py``,
the long version). Run with ``-s`` to see the report.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from campaignlib import DEFAULT_RATES, CampaignConfig, audit, report, run_campaign


@pytest.mark.timeout(240)
async def test_campaign_kills_and_faults_lose_nothing_and_pay_once(tmp_path: Path) -> None:
    config = CampaignConfig(
        root=tmp_path, jobs=60, kills=5, seed=2024, concurrency=8, kill_after=(1.0, 3.0)
    )
    campaign = await run_campaign(config)
    result = audit(campaign)
    print(report(campaign, result))
    assert result.violations == [], "\n".join(result.violations)
    figures = result.figures
    assert figures["kills"] == config.kills
    assert figures["duplicates (charged twice)"] == 0
    assert figures["lost outputs"] == 0
    # Every kind of fault really happened (the rates are meant to make each one occur).
    injected = figures["faults injected"]
    missing = [name for name in DEFAULT_RATES if not injected.get(name)]
    assert not missing, f"faults never injected: {missing} ({injected})"
    assert figures["succeeded"] > 0
